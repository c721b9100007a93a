"""Database-level failures translated into something the domain can act on."""

from sqlalchemy.exc import TimeoutError as PoolTimeoutError


class DuplicateKeyError(Exception):
    """A unique constraint refused a row (a concurrent writer got there first)."""


class InvalidCursorError(ValueError):
    """A page cursor that does not fit the list it was given to."""


class ReadPoolTimeoutError(Exception):
    """No connection of the read pool (db.rawpool) became free in time."""


def is_pool_timeout(exc: BaseException) -> bool:
    """No pooled connection became free within the pool timeout (the pool is exhausted)."""
    return isinstance(exc, PoolTimeoutError | ReadPoolTimeoutError)


class StoreBusyError(Exception):
    """Another request is writing the same file's upload right now; retry shortly."""


class StoreUnavailableError(Exception):
    """A file store could not be reached or refused the operation (its message says why)."""
