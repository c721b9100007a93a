from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Workspace
from db.repositories.pagination import Page, SortKey, count, keyset_page
from db.repositories.writes import insert_unique


class WorkspaceRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def insert(self, workspace: Workspace) -> None:
        await insert_unique(self._session, workspace)

    async def get_by_name(self, name: str) -> Workspace | None:
        return await self._session.scalar(select(Workspace).where(Workspace.name == name))

    async def name_exists(self, name: str) -> bool:
        found = await self._session.scalar(select(Workspace.id).where(Workspace.name == name))
        return found is not None

    async def get_many(self, ids: Sequence[int]) -> list[Workspace | None]:
        rows = await self._session.scalars(select(Workspace).where(Workspace.id.in_(ids)))
        by_id = {row.id: row for row in rows}
        return [by_id.get(i) for i in ids]

    def _listing(self, *, public_only: bool) -> Select[Workspace]:
        stmt = select(Workspace)
        if public_only:
            stmt = stmt.where(Workspace.public.is_(True))
        return stmt

    async def page(
        self, *, public_only: bool, after: SortKey | None, first: int
    ) -> Page[Workspace]:
        return await keyset_page(
            self._session,
            self._listing(public_only=public_only),
            key=[Workspace.name],
            after=after,
            first=first,
        )

    async def count(self, *, public_only: bool) -> int:
        return await count(self._session, self._listing(public_only=public_only))
