from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Select, func, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import TaskType, TaskTypeRevision, Workspace
from db.repositories.pagination import Page, SortKey, count, keyset_page
from db.repositories.writes import insert_unique


@dataclass(frozen=True, slots=True)
class TaskTypeFilter:
    workspace_id: int | None = None
    workspace_name: str | None = None
    public_only: bool = False
    available: bool | None = None
    name_contains: str | None = None


class TaskTypeRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def insert(self, task_type: TaskType) -> None:
        await insert_unique(self._session, task_type)

    def add_revision(self, revision: TaskTypeRevision) -> None:
        self._session.add(revision)

    async def flush(self) -> None:
        await self._session.flush()

    async def get(self, task_type_id: int, *, for_update: bool = False) -> TaskType | None:
        stmt = select(TaskType).where(TaskType.id == task_type_id)
        if for_update:
            stmt = stmt.with_for_update(key_share=True)
        return await self._session.scalar(stmt)

    async def get_by_name(self, workspace_id: int, name: str) -> TaskType | None:
        return await self._session.scalar(
            select(TaskType).where(TaskType.workspace_id == workspace_id, TaskType.name == name)
        )

    async def get_many(self, ids: Sequence[int]) -> list[TaskType | None]:
        rows = await self._session.scalars(select(TaskType).where(TaskType.id.in_(ids)))
        by_id = {row.id: row for row in rows}
        return [by_id.get(i) for i in ids]

    async def next_revision_number(self, task_type_id: int) -> int:
        """Bump and return the revision counter; the row lock serialises concurrent bumps."""
        bumped = await self._session.scalar(
            update(TaskType)
            .where(TaskType.id == task_type_id)
            .values(latest_revision=TaskType.latest_revision + 1)
            .returning(TaskType.latest_revision)
        )
        if bumped is None:
            raise LookupError(task_type_id)
        return int(bumped)

    async def get_revision(self, task_type_id: int, revision: int) -> TaskTypeRevision | None:
        return await self._session.scalar(
            select(TaskTypeRevision).where(
                TaskTypeRevision.task_type_id == task_type_id,
                TaskTypeRevision.revision == revision,
            )
        )

    async def get_revisions(self, keys: Sequence[tuple[int, int]]) -> list[TaskTypeRevision | None]:
        """Revisions by (task type id, revision number), in key order, None for gaps."""
        rows = await self._session.scalars(
            select(TaskTypeRevision).where(
                tuple_(TaskTypeRevision.task_type_id, TaskTypeRevision.revision).in_(keys)
            )
        )
        by_key = {(row.task_type_id, row.revision): row for row in rows}
        return [by_key.get(k) for k in keys]

    async def get_revisions_by_id(self, ids: Sequence[int]) -> list[TaskTypeRevision | None]:
        rows = await self._session.scalars(
            select(TaskTypeRevision).where(TaskTypeRevision.id.in_(ids))
        )
        by_id = {row.id: row for row in rows}
        return [by_id.get(i) for i in ids]

    def _listing(self, flt: TaskTypeFilter) -> Select[TaskType]:
        stmt = select(TaskType)
        if flt.workspace_id is not None:
            stmt = stmt.where(TaskType.workspace_id == flt.workspace_id)
        if flt.public_only or flt.workspace_name is not None:
            stmt = stmt.join(Workspace, Workspace.id == TaskType.workspace_id)
        if flt.public_only:
            stmt = stmt.where(Workspace.public.is_(True))
        if flt.workspace_name is not None:
            stmt = stmt.where(Workspace.name == flt.workspace_name)
        if flt.available is not None:
            stmt = stmt.where(TaskType.available.is_(flt.available))
        if flt.name_contains:
            pattern = (
                "%"
                + flt.name_contains.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                + "%"
            )
            stmt = stmt.where(TaskType.name.ilike(pattern, escape="\\"))
        return stmt

    async def page(
        self, flt: TaskTypeFilter, *, after: SortKey | None, first: int
    ) -> Page[TaskType]:
        return await keyset_page(
            self._session,
            self._listing(flt),
            key=[TaskType.name, TaskType.id],
            after=after,
            first=first,
        )

    async def count(self, flt: TaskTypeFilter) -> int:
        return await count(self._session, self._listing(flt))

    async def revision_page(
        self, task_type_id: int, *, after: SortKey | None, first: int
    ) -> Page[TaskTypeRevision]:
        stmt = select(TaskTypeRevision).where(TaskTypeRevision.task_type_id == task_type_id)
        return await keyset_page(
            self._session, stmt, key=[TaskTypeRevision.revision], after=after, first=first
        )

    async def revision_count(self, task_type_id: int) -> int:
        stmt = select(TaskTypeRevision).where(TaskTypeRevision.task_type_id == task_type_id)
        return await count(self._session, stmt)

    async def mark_checked_in(self, task_type_id: int) -> TaskType | None:
        """Reset the check-in clock (even when nothing else changes) and mark available."""
        return await self._session.scalar(
            update(TaskType)
            .where(TaskType.id == task_type_id)
            .values(last_check_in_at=func.now(), available=True)
            .returning(TaskType)
            .execution_options(populate_existing=True)
        )
