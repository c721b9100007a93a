from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import PeriodicTask


class PeriodicRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def ensure(self, name: str, *, interval_seconds: float, now: datetime) -> None:
        """The task's row, created due now if it is new; its interval kept current."""
        stmt = pg_insert(PeriodicTask).values(
            name=name, interval_seconds=interval_seconds, next_run_at=now, runs=0
        )
        await self._session.execute(
            stmt.on_conflict_do_update(
                index_elements=["name"],
                set_={"interval_seconds": interval_seconds},
                where=PeriodicTask.interval_seconds != interval_seconds,
            )
        )

    async def next_runs(self) -> dict[str, datetime]:
        rows = await self._session.execute(select(PeriodicTask.name, PeriodicTask.next_run_at))
        return {name: at for name, at in rows}

    async def get(self, name: str, *, for_update: bool = False) -> PeriodicTask | None:
        stmt = select(PeriodicTask).where(PeriodicTask.name == name)
        if for_update:
            stmt = stmt.with_for_update()
        return await self._session.scalar(stmt)

    async def all(self) -> list[PeriodicTask]:
        return list(await self._session.scalars(select(PeriodicTask).order_by(PeriodicTask.name)))

    async def flush(self) -> None:
        await self._session.flush()
