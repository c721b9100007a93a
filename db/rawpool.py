"""A plain asyncpg pool for reads that need nothing of SQLAlchemy around them (the
compiled read path sends one prepared statement and takes one text value back).

Why not the engine's pool: under 16 concurrent small requests, checking a connection
out of SQLAlchemy's async pool (greenlet hand-offs, reset-on-return) cost about as much
as the statement itself, and its overflow connections were opened and closed again and
again. Connections here are only ever used for single autocommit SELECTs, so returning
one needs no reset round trip.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from db.errors import ReadPoolTimeoutError

READ_POOL_SIZE = 20


async def _no_reset(connection: asyncpg.Connection) -> None:
    """Nothing to undo: these connections only ever run single SELECTs in autocommit."""


async def open_read_pool(engine: AsyncEngine, *, size: int = READ_POOL_SIZE) -> asyncpg.Pool:
    url = engine.url
    kwargs: dict[str, Any] = {
        "user": url.username,
        "password": url.password,
        "host": url.query.get("host") or url.host,
        "port": url.port,
        "database": url.database,
    }
    pool = await asyncpg.create_pool(
        min_size=1,
        max_size=size,
        reset=_no_reset,
        **{k: v for k, v in kwargs.items() if v is not None},
    )
    assert pool is not None
    return pool


@asynccontextmanager
async def acquired(
    pool: asyncpg.Pool, wait_seconds: float | None
) -> AsyncIterator[asyncpg.Connection]:
    """A connection of the pool, or ReadPoolTimeoutError when none is free within
    ``wait_seconds`` (the engine's pool answers so too: the API says 503)."""
    try:
        connection = await pool.acquire(timeout=wait_seconds)
    except TimeoutError as exc:
        raise ReadPoolTimeoutError(f"no read connection free within {wait_seconds} s") from exc
    try:
        yield connection
    finally:
        await pool.release(connection)
