"""Database-level failures translated into something the domain can act on."""


class DuplicateKeyError(Exception):
    """A unique constraint refused a row (a concurrent writer got there first)."""


class InvalidCursorError(ValueError):
    """A page cursor that does not fit the list it was given to."""
