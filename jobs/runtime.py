"""Database access for actors: one engine per event loop, built on first use."""

from __future__ import annotations

import asyncio
import os
import weakref

import dramatiq

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
        url = _url or os.environ.get("DATABASE_URL")
        if not url:
            raise RuntimeError("DATABASE_URL is not set for this worker")
        found = connect(url, pool_size=5, max_overflow=5)
        _databases[loop] = found
    return found


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
