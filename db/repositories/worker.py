from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import DateTime, Select, and_, func, not_, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.enums import WorkerKind
from db.models import Token, Worker
from db.repositories.pagination import Page, SortKey, count, keyset_page
from db.repositories.writes import insert_unique

# Serialises name choices across processes registering at the same moment.
NAMING_LOCK_KEY = 0x62670002


class WorkerRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def lock_naming(self) -> None:
        await self._session.execute(select(func.pg_advisory_xact_lock(NAMING_LOCK_KEY)))

    async def names_like(self, prefix: str) -> set[str]:
        rows = await self._session.scalars(
            select(Worker.name).where(Worker.name.startswith(prefix, autoescape=True))
        )
        return set(rows)

    async def insert(self, worker: Worker) -> None:
        await insert_unique(self._session, worker)

    async def flush(self) -> None:
        await self._session.flush()

    async def get(self, worker_id: int, *, for_update: bool = False) -> Worker | None:
        stmt = select(Worker).where(Worker.id == worker_id)
        if for_update:
            stmt = stmt.with_for_update(key_share=True)
        return await self._session.scalar(stmt)

    async def get_many(self, ids: Sequence[int]) -> list[Worker | None]:
        rows = await self._session.scalars(select(Worker).where(Worker.id.in_(ids)))
        by_id = {row.id: row for row in rows}
        return [by_id.get(i) for i in ids]

    async def get_by_token(self, token_id: int, *, for_update: bool = False) -> Worker | None:
        stmt = select(Worker).where(Worker.token_id == token_id)
        if for_update:
            stmt = stmt.with_for_update(key_share=True)
        return await self._session.scalar(stmt)

    async def get_by_name(self, name: str) -> Worker | None:
        return await self._session.scalar(select(Worker).where(Worker.name == name))

    async def fleet_implementations(self, *, cutoff: datetime) -> frozenset[str]:
        """The implementations that connected fleet workers (heard from since
        ``cutoff``) report in their metadata."""
        rows = await self._session.scalars(
            select(func.jsonb_array_elements_text(Worker.dynamic_metadata["implementations"]))
            .where(
                Worker.kind == WorkerKind.FLEET,
                Worker.connected_at.is_not(None),
                Worker.last_seen_at >= cutoff,
                func.jsonb_typeof(Worker.dynamic_metadata["implementations"]) == "array",
            )
            .distinct()
        )
        return frozenset(rows)

    async def database_started_at(self) -> datetime:
        """When the PostgreSQL server last started: a restart resets it."""
        started = await self._session.scalar(
            select(func.pg_postmaster_start_time(type_=DateTime(timezone=True)))
        )
        assert isinstance(started, datetime)
        return started

    async def lost_since(self, cutoff: datetime) -> list[Worker]:
        """Connected workers last heard from before ``cutoff`` (locked, skipping busy rows)."""
        rows = await self._session.scalars(
            select(Worker)
            .where(Worker.connected_at.is_not(None), Worker.last_seen_at < cutoff)
            .order_by(Worker.id)
            .with_for_update(key_share=True, skip_locked=True)
        )
        return list(rows)

    async def connected(self, cutoff: datetime) -> list[tuple[Worker, bool | None]]:
        """Workers heard from since ``cutoff``, with whether their token is enabled
        (None for workers without a token)."""
        rows = await self._session.execute(
            _listing(True, cutoff)
            .add_columns(Token.enabled)
            .outerjoin(Token, Token.id == Worker.token_id)
            .order_by(Worker.id)
        )
        return [(worker, enabled) for worker, enabled in rows]

    async def page(
        self, *, connected: bool | None, cutoff: datetime, after: SortKey | None, first: int
    ) -> Page[Worker]:
        return await keyset_page(
            self._session,
            _listing(connected, cutoff),
            key=[Worker.name],
            after=after,
            first=first,
        )

    async def count(self, *, connected: bool | None, cutoff: datetime) -> int:
        return await count(self._session, _listing(connected, cutoff))


def _listing(connected: bool | None, cutoff: datetime) -> Select[Worker]:
    """``cutoff``: heard from since then counts as connected (now − timeout)."""
    stmt = select(Worker)
    is_connected = and_(Worker.connected_at.is_not(None), Worker.last_seen_at >= cutoff)
    if connected is True:
        stmt = stmt.where(is_connected)
    elif connected is False:
        stmt = stmt.where(not_(is_connected))
    return stmt
