from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from db.base import Base
from db.errors import DuplicateKeyError

UNIQUE_VIOLATION = "23505"


async def insert_unique(session: AsyncSession, row: Base) -> None:
    """Insert ``row`` now, inside a savepoint, turning a unique violation into DuplicateKeyError.

    The savepoint keeps the surrounding transaction usable after a refused row.
    """
    try:
        async with session.begin_nested():
            session.add(row)
            await session.flush()
    except IntegrityError as exc:
        if getattr(exc.orig, "sqlstate", None) == UNIQUE_VIOLATION or "unique" in str(exc.orig):
            raise DuplicateKeyError(str(exc.orig)) from exc
        raise
