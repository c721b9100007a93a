"""Repositories on a real PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from db.enums import CachePolicy
from db.errors import DuplicateKeyError, InvalidCursorError
from db.models import TaskType, TaskTypeRevision, Workspace
from db.repositories.task_type import TaskTypeFilter, TaskTypeRepository
from db.repositories.workspace import WorkspaceRepository
from db.session import Database


async def _workspace(session: AsyncSession, name: str, public: bool = False) -> Workspace:
    row = Workspace(name=name, public=public)
    await WorkspaceRepository(session).insert(row)
    return row


async def _task_type(session: AsyncSession, ws: Workspace, name: str) -> TaskType:
    repo = TaskTypeRepository(session)
    row = TaskType(workspace_id=ws.id, name=name, latest_revision=1)
    await repo.insert(row)
    repo.add_revision(
        TaskTypeRevision(
            task_type_id=row.id,
            revision=1,
            description="",
            parameters_schema={},
            result_schema={},
            implementation="external",
            timeout_seconds=None,
            max_attempts=1,
            cache_policy=CachePolicy.NONE,
            created_by="t",
        )
    )
    await repo.flush()
    return row


async def test_get_many_keeps_key_order_with_gaps(session: AsyncSession) -> None:
    a = await _workspace(session, "a")
    b = await _workspace(session, "b")
    rows = await WorkspaceRepository(session).get_many([b.id, 999_999, a.id])
    assert [r.name if r else None for r in rows] == ["b", None, "a"]


async def test_duplicate_insert_raises_and_the_session_stays_usable(
    session: AsyncSession,
) -> None:
    await _workspace(session, "dup")
    with pytest.raises(DuplicateKeyError):
        await _workspace(session, "dup")
    assert await WorkspaceRepository(session).name_exists("dup")


async def test_filtering_and_public_only(session: AsyncSession) -> None:
    open_ws = await _workspace(session, "open", public=True)
    closed = await _workspace(session, "closed")
    await _task_type(session, open_ws, "Resize_100%")
    await _task_type(session, closed, "resize-private")
    repo = TaskTypeRepository(session)
    public = await repo.page(TaskTypeFilter(public_only=True), after=None, first=10)
    assert [t.name for t in public.items] == ["Resize_100%"]
    # LIKE wildcards in the needle are literal.
    literal = await repo.page(TaskTypeFilter(name_contains="_100%"), after=None, first=10)
    assert [t.name for t in literal.items] == ["Resize_100%"]
    # Unescaped, "_" would match the "-" of "resize-private".
    none = await repo.page(TaskTypeFilter(name_contains="e_p"), after=None, first=10)
    assert none.items == []
    by_name = await repo.count(TaskTypeFilter(workspace_name="closed"))
    assert by_name == 1


async def test_cursor_of_the_wrong_shape_is_refused(session: AsyncSession) -> None:
    with pytest.raises(InvalidCursorError):
        await WorkspaceRepository(session).page(public_only=False, after=(1,), first=5)
    with pytest.raises(InvalidCursorError):
        await WorkspaceRepository(session).page(public_only=False, after=("a", "b"), first=5)


async def test_two_sessions_race_for_one_name_and_exactly_one_wins(db: Database) -> None:
    """Both pass the "name free?" check; the unique constraint lets exactly one commit."""
    gate = asyncio.Barrier(2)

    async def attempt() -> str:
        async with db.write_session() as s:
            repo = WorkspaceRepository(s)
            assert not await repo.name_exists("contested")
            await gate.wait()
            try:
                await repo.insert(Workspace(name="contested"))
                await s.commit()
            except DuplicateKeyError:
                return "lost"
            return "won"

    results = await asyncio.gather(attempt(), attempt())
    assert sorted(results) == ["lost", "won"]


async def test_concurrent_revision_bumps_never_collide(db: Database) -> None:
    async with db.write_session() as s:
        ws = await WorkspaceRepository(s).get_by_name("default")
        assert ws is not None
        tt = await _task_type(s, ws, "bumped")
        await s.commit()

    async def bump() -> int:
        async with db.write_session() as s:
            n = await TaskTypeRepository(s).next_revision_number(tt.id)
            await s.commit()
            return n

    numbers = await asyncio.gather(*(bump() for _ in range(8)))
    assert sorted(numbers) == list(range(2, 10))
