"""Actors called directly: thin, idempotent, quiet on domain refusals."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from db.models import TaskType
from db.session import Database
from jobs import runtime
from jobs.actors import ACTORS
from jobs.actors.tasktypes import check_in
from tests.conftest import row_counts
from tests.factories import make_task_type


@pytest.fixture
async def worker_runtime(db: Database, database_url: str) -> AsyncIterator[None]:
    runtime.configure(database_url)
    yield
    await runtime.dispose()


async def _checked_in(db: Database, task_type_id: int) -> TaskType:
    async with db.read_session() as s:
        row = await s.scalar(select(TaskType).where(TaskType.id == task_type_id))
    assert row is not None
    return row


async def test_check_in_actor_marks_available_and_is_idempotent(
    db: Database, worker_runtime: None
) -> None:
    tt = await make_task_type(db, "resize")
    await check_in(tt.id)
    first = await _checked_in(db, tt.id)
    assert first.available is True
    assert first.last_check_in_at is not None
    await check_in(tt.id)  # redelivered: same outcome, clock moved on
    second = await _checked_in(db, tt.id)
    assert second.available is True
    assert second.last_check_in_at is not None
    assert second.last_check_in_at >= first.last_check_in_at


async def test_unknown_task_type_is_refused_quietly(db: Database, worker_runtime: None) -> None:
    before = await row_counts(db)
    await check_in(987_654)  # must not raise: a refusal is not retried
    assert await row_counts(db) == before


def test_actor_names_are_dotted_area_verb() -> None:
    for name in ACTORS:
        area, verb = name.split(".")
        assert area.isidentifier()
        assert verb.isidentifier()
