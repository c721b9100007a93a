"""Database access for actors: one engine per event loop, built on first use."""

from __future__ import annotations

import asyncio
import os
import socket
import weakref

import dramatiq

from db.config import settings
from db.session import Database, connect
from db.uow import UnitOfWork
from domain.ports import Dispatcher
from jobs.dispatch import DramatiqDispatcher

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
_running = 0


def set_worker_name(name: str) -> None:
    global _worker_name
    _worker_name = name


def worker_name() -> str:
    """The registered name of this fleet worker (host-pid until it registered)."""
    return _worker_name or f"{socket.gethostname()}-{os.getpid()}"


def running_jobs() -> int:
    return _running


def job_started() -> None:
    global _running
    _running += 1


def job_ended() -> None:
    global _running
    _running -= 1


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


def unit_of_work() -> UnitOfWork:
    return UnitOfWork(database().write_session, dispatcher=dispatcher())


async def dispose() -> None:
    loop = asyncio.get_running_loop()
    found = _databases.pop(loop, None)
    if found is not None:
        await found.dispose()
