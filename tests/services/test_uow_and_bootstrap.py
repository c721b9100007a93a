"""Unit of work semantics and the first-start admin."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from db.enums import TokenRole
from db.models import Token, Workspace
from db.session import Database
from db.uow import UnitOfWork
from domain.auth import service as auth


async def test_after_commit_callbacks_run_only_after_a_commit(db: Database) -> None:
    ran: list[str] = []

    async def note(tag: str) -> None:
        ran.append(tag)

    async with UnitOfWork(db.write_session) as uow:
        uow.after_commit(lambda: note("rolled-back"))
        uow.session.add(Workspace(name="never"))
        await uow.session.flush()
        # leaving without commit() rolls back
    async with UnitOfWork(db.write_session) as uow:
        uow.after_commit(lambda: note("committed"))
        uow.session.add(Workspace(name="kept"))
        await uow.commit()
    assert ran == ["committed"]
    async with db.read_session() as s:
        names = set(await s.scalars(select(Workspace.name)))
    assert "kept" in names
    assert "never" not in names


async def test_a_failing_callback_does_not_undo_the_commit(db: Database) -> None:
    async def boom() -> None:
        raise ConnectionError("broker down")

    async with UnitOfWork(db.write_session) as uow:
        uow.after_commit(boom)
        uow.session.add(Workspace(name="survives"))
        await uow.commit()
    async with db.read_session() as s:
        assert await s.scalar(select(Workspace).where(Workspace.name == "survives"))


async def _bootstrap(db: Database) -> str | None:
    async with UnitOfWork(db.write_session) as uow:
        secret = await auth.bootstrap_admin(uow)
        await uow.commit()
    return secret


async def test_bootstrap_creates_one_admin_even_when_processes_race(db: Database) -> None:
    results = await asyncio.gather(*(_bootstrap(db) for _ in range(4)))
    assert sum(r is not None for r in results) == 1
    assert await _bootstrap(db) is None  # later starts print nothing
    async with db.read_session() as s:
        admins = await s.scalar(
            select(func.count()).select_from(Token).where(Token.role == TokenRole.ADMIN)
        )
    assert admins == 1
