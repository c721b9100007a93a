from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.enums import TokenRole
from db.models import Token
from db.repositories.pagination import Page, SortKey, count, keyset_page


class TokenRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    def add(self, token: Token) -> None:
        self._session.add(token)

    async def flush(self) -> None:
        await self._session.flush()

    async def get(self, token_id: int, *, for_update: bool = False) -> Token | None:
        stmt = select(Token).where(Token.id == token_id)
        if for_update:
            stmt = stmt.with_for_update(key_share=True)
        return await self._session.scalar(stmt)

    async def get_many(self, ids: Sequence[int]) -> list[Token | None]:
        rows = await self._session.scalars(select(Token).where(Token.id.in_(ids)))
        by_id = {row.id: row for row in rows}
        return [by_id.get(i) for i in ids]

    async def get_by_hash(self, secret_hash: str) -> Token | None:
        return await self._session.scalar(select(Token).where(Token.secret_hash == secret_hash))

    async def any_enabled_admin(self) -> bool:
        stmt = select(exists().where(Token.role == TokenRole.ADMIN, Token.enabled.is_(True)))
        return bool(await self._session.scalar(stmt))

    async def touch_last_used(self, token_id: int, *, now: datetime, every: timedelta) -> None:
        """Record use, at most once per ``every`` so reads do not become writes."""
        await self._session.execute(
            update(Token)
            .where(
                Token.id == token_id,
                or_(Token.last_used_at.is_(None), Token.last_used_at < now - every),
            )
            .values(last_used_at=now)
        )

    async def page(self, *, after: SortKey | None, first: int) -> Page[Token]:
        return await keyset_page(
            self._session, select(Token), key=[Token.id], after=after, first=first
        )

    async def count(self) -> int:
        return await count(self._session, select(Token))

    async def lock_bootstrap(self) -> None:
        """Serialise first-start admin creation across processes (released at commit)."""
        await self._session.execute(select(func.pg_advisory_xact_lock(BOOTSTRAP_LOCK_KEY)))


# An arbitrary, fixed key for pg_advisory_xact_lock.
BOOTSTRAP_LOCK_KEY = 0x62670001
