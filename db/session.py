"""Engine and sessionmakers. One engine per process; a session per unit of work or read."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from db.config import asyncpg_url


@dataclass(frozen=True, slots=True)
class Database:
    engine: AsyncEngine
    read_session: async_sessionmaker[AsyncSession]
    write_session: async_sessionmaker[AsyncSession]

    async def dispose(self) -> None:
        await self.engine.dispose()


def connect(
    url: str, *, pool_size: int = 10, max_overflow: int = 10, pool_timeout: float = 30.0
) -> Database:
    """``pool_timeout``: how long a checkout waits for a free connection before
    sqlalchemy.exc.TimeoutError (the API answers that 503 UNAVAILABLE)."""
    engine = create_async_engine(
        asyncpg_url(url),
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=pool_timeout,
        # No pre-ping: it costs a round trip per checkout. After a database restart
        # the first failing statement invalidates the whole pool instead.
        pool_recycle=1800,
        # Errors and logs never show bound values: they hold token hashes, results and
        # parameters that are not the log reader's to see.
        hide_parameters=True,
    )
    # Reads run in autocommit: a read session is one or two statements, and a
    # transaction around them would cost a BEGIN and a ROLLBACK round trip each.
    reader = engine.execution_options(isolation_level="AUTOCOMMIT")
    return Database(
        engine=engine,
        read_session=async_sessionmaker(reader, expire_on_commit=False, autoflush=False),
        write_session=async_sessionmaker(engine, expire_on_commit=False),
    )
