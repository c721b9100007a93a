"""Workers (SPEC §4) and maintenance: names, heartbeats, lost workers, lost messages."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from db.enums import JobStatus
from db.models import Batch, Job, Worker
from db.session import Database
from db.uow import UnitOfWork
from domain.jobs import execution
from domain.maintenance import service as maintenance
from domain.workers import rules, service
from tests.factories import RecordingDispatcher, make_batch, make_task_type

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_names_come_from_host_names_with_suffixes() -> None:
    assert rules.slugify("build1.example.org") == "build1-example-org"
    assert rules.free_name("build1.example.org", set()) == "build1-example-org"
    taken = {"build1-example-org", "build1-example-org-2"}
    assert rules.free_name("build1.example.org", taken) == "build1-example-org-3"


@pytest.mark.parametrize(("gap", "connected"), [(20, True), (20.001, False), (0, True)])
def test_connected_until_strictly_past_the_timeout(gap: float, connected: bool) -> None:
    assert (
        rules.is_connected(
            connected_at=NOW, last_seen_at=NOW - timedelta(seconds=gap), now=NOW, timeout_seconds=20
        )
        is connected
    )
    assert rules.is_connected(connected_at=None, last_seen_at=NOW, now=NOW) is False


def test_static_metadata_wins() -> None:
    assert rules.metadata({"gpu": False}, {"gpu": True, "load": 1}) == {"gpu": False, "load": 1}


async def register(db: Database, host: str = "build1.example.org") -> Worker:
    async with UnitOfWork(db.write_session) as uow:
        found = await service.register_fleet(
            uow, host=host, concurrency=2, dynamic_metadata={"pid": 1}
        )
        await uow.commit()
    return found


async def test_concurrent_registrations_get_distinct_names(db: Database) -> None:
    found = await asyncio.gather(*(register(db) for _ in range(3)))
    assert sorted(w.name for w in found) == [
        "build1-example-org",
        "build1-example-org-2",
        "build1-example-org-3",
    ]


async def _age(db: Database, worker_id: int, seconds: int) -> None:
    async with db.engine.begin() as conn:
        await conn.execute(
            update(Worker)
            .where(Worker.id == worker_id)
            .values(last_seen_at=datetime.now(UTC) - timedelta(seconds=seconds))
        )


async def test_a_silent_worker_is_lost_and_its_jobs_go_back(db: Database) -> None:
    await make_task_type(db, "echo", implementation="builtin.echo", max_attempts=2)
    await make_task_type(db, "once", implementation="builtin.echo", max_attempts=1)
    batch = await make_batch(
        db,
        {
            "recipe": {
                "nodes": [{"name": "a", "taskType": "echo"}, {"name": "b", "taskType": "once"}]
            },
            "inputs": [{}],
        },
    )
    worker = await register(db)
    async with db.read_session() as s:
        ids = list(await s.scalars(select(Job.id).where(Job.batch_id == batch.id).order_by(Job.id)))
    for job_id in ids:
        async with UnitOfWork(db.write_session) as uow:
            assert await execution.claim(uow, job_id=job_id, worker=worker.name)
            await uow.commit()
    await _age(db, worker.id, 21)
    sent = RecordingDispatcher()
    async with UnitOfWork(db.write_session, dispatcher=sent) as uow:
        done = await maintenance.tick(uow, now=datetime.now(UTC))
        await uow.commit()
    assert done is not None
    assert (done.lost_workers, done.requeued_jobs) == (1, 2)
    async with db.read_session() as s:
        jobs = list(await s.scalars(select(Job).where(Job.batch_id == batch.id).order_by(Job.id)))
        lost = await s.scalar(select(Worker).where(Worker.id == worker.id))
    assert [(j.status, j.attempt) for j in jobs] == [(JobStatus.QUEUED, 2), (JobStatus.FAILED, 1)]
    assert jobs[1].error_code == "WORKER_LOST"
    assert ("jobs.run", (jobs[0].id,)) in sent.sent
    assert lost is not None
    assert lost.connected_at is None
    assert lost.lost_at is not None
    # It comes back: connected again.
    async with UnitOfWork(db.write_session) as uow:
        assert await service.heartbeat(uow, worker_id=worker.id, dynamic_metadata={"pid": 2})
        await uow.commit()
    async with db.read_session() as s:
        back = await s.scalar(select(Worker).where(Worker.id == worker.id))
    assert back is not None
    assert (back.connected_at is not None, back.lost_at, back.dynamic_metadata) == (
        True,
        None,
        {"pid": 2},
    )


async def test_lost_messages_and_stalled_creations_are_sent_again(db: Database) -> None:
    await make_task_type(db, "echo", implementation="builtin.echo")
    queued = await make_batch(
        db, {"recipe": {"nodes": [{"name": "a", "taskType": "echo"}]}, "inputs": [{}]}
    )
    stalled = await make_batch(
        db,
        {"recipe": {"nodes": [{"name": "a", "taskType": "echo"}]}, "inputs": [{}]},
        finish_creation=False,
    )
    async with db.engine.begin() as conn:
        await conn.execute(update(Job).values(queued_at=datetime.now(UTC) - timedelta(minutes=5)))
        await conn.execute(
            update(Batch)
            .where(Batch.id == stalled.id)
            .values(last_modified_at=datetime.now(UTC) - timedelta(minutes=5))
        )
    async with db.read_session() as s:
        [job_id] = list(await s.scalars(select(Job.id).where(Job.batch_id == queued.id)))
    sent = RecordingDispatcher()
    async with UnitOfWork(db.write_session, dispatcher=sent) as uow:
        done = await maintenance.tick(uow, now=datetime.now(UTC))
        await uow.commit()
    assert done is not None
    assert sorted(sent.sent) == sorted(
        [("jobs.run", (job_id,)), ("batches.create_chunk", (stalled.id, 0))]
    )


async def test_only_one_process_ticks_at_a_time(db: Database) -> None:
    gate = asyncio.Event()

    async def hold() -> object:
        async with UnitOfWork(db.write_session) as uow:
            found = await maintenance.tick(uow, now=datetime.now(UTC))
            gate.set()
            await asyncio.sleep(0.3)
            return found

    async def other() -> object:
        await gate.wait()
        async with UnitOfWork(db.write_session) as uow:
            return await maintenance.tick(uow, now=datetime.now(UTC))

    first, second = await asyncio.gather(hold(), other())
    assert first is not None
    assert second is None
