"""Database access for actors: one engine per event loop, built on first use."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import platform
import socket
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable, Sequence
from importlib.metadata import version
from typing import Any, TypeVar

import asyncpg
import dramatiq
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from db.config import settings
from db.filestores.factory import Stores
from db.session import Database, connect
from db.uow import UnitOfWork
from domain.jobs import execution
from domain.jobs.execution import Finish
from domain.ports import Dispatcher
from jobs.dispatch import DramatiqDispatcher
from jobs.implementations import registry

log = logging.getLogger(__name__)
T = TypeVar("T")

_url: str | None = None
_dispatcher: Dispatcher | None = None
_databases: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Database] = (
    weakref.WeakKeyDictionary()
)


def configure(database_url: str) -> None:
    global _url
    _url = database_url


def database() -> Database:
    """The engine for the running loop (asyncpg connections belong to one loop)."""
    loop = asyncio.get_running_loop()
    found = _databases.get(loop)
    if found is None:
        url = _url or settings().database_url
        if not url:
            raise RuntimeError("DATABASE_URL is not set for this worker")
        found = connect(url, pool_size=5, max_overflow=5)
        _databases[loop] = found
    return found


_worker_name: str | None = None
_running: set[int] = set()


def set_worker_name(name: str) -> None:
    global _worker_name
    _worker_name = name


def worker_name() -> str:
    """The registered name of this fleet worker (host-pid until it registered)."""
    return _worker_name or f"{socket.gethostname()}-{os.getpid()}"


def running_jobs() -> int:
    return len(_running)


def running_ids() -> list[int]:
    return sorted(_running)


def job_started(job_id: int) -> None:
    _running.add(job_id)


def job_ended(job_id: int) -> None:
    _running.discard(job_id)


@functools.cache
def _static_metadata() -> dict[str, Any]:
    return {
        "arch": platform.machine(),
        "os": platform.system().lower(),
        "implementations": sorted(registry()),
        "versions": {
            "batchgraph": version("batchgraph"),
            "dramatiq": version("dramatiq"),
            "python": platform.python_version(),
        },
    }


def worker_metadata() -> dict[str, Any]:
    """What this process reports about itself (dynamic metadata): task types'
    requirements are matched against it (overlaid by what an admin set)."""
    return {
        "pid": os.getpid(),
        "running": running_jobs(),
        "load": list(os.getloadavg()),
        **_static_metadata(),
    }


# --- writes that survive a database restart -------------------------------------------

# How long a write is retried on fresh connections before its outcomes are kept for
# the heartbeat to write later.
RETRY_SECONDS = 30.0
_unsaved: dict[int, Finish] = {}


def transient(exc: BaseException) -> bool:
    """A failure of the connection, not of the statement: worth another try."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(
        exc,
        OperationalError
        | InterfaceError
        | OSError
        | asyncpg.PostgresConnectionError
        | asyncpg.InterfaceError
        | asyncpg.CannotConnectNowError
        | asyncpg.AdminShutdownError,
    )


async def in_transaction(
    work: Callable[[UnitOfWork], Awaitable[T]],
    *,
    unsaved: Sequence[Finish] = (),
    seconds: float = RETRY_SECONDS,
) -> T:
    """``work`` in one unit of work, committed; retried on a fresh connection while
    the database is away (up to ``seconds``). When it gives up, the ``unsaved``
    outcomes are kept in this process (``save_unsaved`` writes them later)."""
    deadline = time.monotonic() + seconds
    delay = 0.1
    while True:
        try:
            async with unit_of_work() as uow:
                result = await work(uow)
                await uow.commit()
            return result
        except Exception as exc:
            if not transient(exc) or time.monotonic() > deadline:
                for f in unsaved:
                    _unsaved[f.job_id] = f
                raise
            log.warning(
                "database unavailable (%s); trying again in %.1f s", type(exc).__name__, delay
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)


def is_unsaved(job_id: int) -> bool:
    return job_id in _unsaved


async def save_unsaved(*, only: Iterable[int] | None = None) -> int:
    """Write outcomes kept while the database was away. Returns how many were written."""
    wanted = set(only) if only is not None else set(_unsaved)
    kept = [f for i, f in list(_unsaved.items()) if i in wanted]
    if not kept:
        return 0
    try:
        async with unit_of_work() as uow:
            await execution.finish(uow, kept)
            await uow.commit()
    except Exception as exc:
        if transient(exc):
            log.warning("%d outcomes still wait for the database", len(kept))
            return 0
        raise
    for f in kept:
        _unsaved.pop(f.job_id, None)
    log.info("wrote %d outcomes kept while the database was away", len(kept))
    return len(kept)


def dispatcher() -> Dispatcher:
    """Sends follow-up messages through the broker this worker consumes from."""
    global _dispatcher
    if _dispatcher is None:
        _dispatcher = DramatiqDispatcher(dramatiq.get_broker())
    return _dispatcher


def use_dispatcher(found: Dispatcher | None) -> None:
    """Tests (and embedders) choose where follow-up messages go."""
    global _dispatcher
    _dispatcher = found


_file_stores: Stores | None = None


def file_stores() -> Stores:
    """The file stores, opened once per process (BATCHGRAPH_FILES_DIR for local ones)."""
    global _file_stores
    if _file_stores is None:
        _file_stores = Stores(settings().files_path())
    return _file_stores


def use_file_stores(found: Stores | None) -> None:
    global _file_stores
    _file_stores = found


def unit_of_work() -> UnitOfWork:
    return UnitOfWork(database().write_session, dispatcher=dispatcher(), file_stores=file_stores())


async def dispose() -> None:
    loop = asyncio.get_running_loop()
    found = _databases.pop(loop, None)
    if found is not None:
        await found.dispose()
