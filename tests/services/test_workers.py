"""Workers (SPEC §4) and maintenance: names, heartbeats, lost workers, lost messages."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from db.enums import JobStatus
from db.models import Batch, Job, Worker
from db.session import Database
from db.uow import UnitOfWork
from domain.jobs import execution
from domain.maintenance import service as maintenance
from domain.periodic.service import Periodic, Scheduler
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
    async with UnitOfWork(db.write_session) as uow:
        claims = await claim(uow, ids, worker.name)
        await uow.commit()
    assert sorted(c.job_id for c in claims.claimed) == ids
    await _age(db, worker.id, 21)
    sent = RecordingDispatcher()
    async with UnitOfWork(db.write_session, dispatcher=sent) as uow:
        # A clock at which the test server (maybe just started) has been up past the timeout.
        now = max(datetime.now(UTC), await _up_for(uow, rules.DEFAULT_TIMEOUT_SECONDS + 1))
        done = await maintenance.lose_silent_workers(uow, now)
        await uow.commit()
    assert done == "1 worker lost, 2 jobs back"
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


async def _up_for(uow: UnitOfWork, seconds: float) -> datetime:
    """The moment the database will have been up for ``seconds`` since it last started."""
    return await uow.workers.database_started_at() + timedelta(seconds=seconds)


async def test_after_a_database_restart_no_worker_is_lost_before_it_could_heartbeat(
    db: Database,
) -> None:
    """Every worker was silent while the database was away. Until the database has
    been up for a worker timeout, none is judged lost; then the silent one is."""
    await make_task_type(db, "echo", implementation="builtin.echo", max_attempts=1)
    batch = await make_batch(
        db, {"recipe": {"nodes": [{"name": "a", "taskType": "echo"}]}, "inputs": [{}]}
    )
    worker = await register(db)
    async with db.read_session() as s:
        job_id = await s.scalar(select(Job.id).where(Job.batch_id == batch.id))
    assert job_id is not None
    async with UnitOfWork(db.write_session) as uow:
        await claim(uow, [job_id], worker.name)
        started = await uow.workers.database_started_at()
        await uow.commit()
    async with db.engine.begin() as conn:  # last heard from well before the restart
        await conn.execute(
            update(Worker)
            .where(Worker.id == worker.id)
            .values(last_seen_at=started - timedelta(seconds=60))
        )
    timeout = rules.DEFAULT_TIMEOUT_SECONDS
    async with UnitOfWork(db.write_session) as uow:
        early = await maintenance.lose_silent_workers(uow, started + timedelta(seconds=timeout - 1))
        await uow.commit()
    async with db.read_session() as s:
        job = await s.scalar(select(Job).where(Job.id == job_id))
    assert early is None
    assert job is not None
    assert (job.status, job.worker) == (JobStatus.RUNNING, worker.name)
    async with UnitOfWork(db.write_session, dispatcher=RecordingDispatcher()) as uow:
        late = await maintenance.lose_silent_workers(uow, started + timedelta(seconds=timeout + 1))
        await uow.commit()
    assert late == "1 worker lost, 1 job back"


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
        done = await maintenance.resend_lost_messages(uow, datetime.now(UTC))
        await uow.commit()
    assert done == "1 job and 1 creation sent again"
    assert sorted(sent.sent) == sorted(
        [("jobs.run", (job_id,)), ("batches.create_chunk", (stalled.id, 0))]
    )


async def test_a_periodic_task_runs_in_one_process_at_a_time(db: Database) -> None:
    gate = asyncio.Event()
    runs: list[str] = []

    async def slow(uow: UnitOfWork, now: datetime) -> str:
        runs.append("ran")
        gate.set()
        await asyncio.sleep(0.3)
        return "done"

    task = Periodic("tests.slow", timedelta(seconds=60), slow)

    def scheduler(runner: str) -> Scheduler:
        return Scheduler(
            lambda: UnitOfWork(db.write_session),
            runner=runner,
            now=lambda: datetime.now(UTC),
            tasks=[task],
        )

    first, second = scheduler("a"), scheduler("b")
    async with UnitOfWork(db.write_session) as uow:
        await uow.periodic.ensure(task.name, interval_seconds=60, now=datetime.now(UTC))
        await uow.commit()

    async def other() -> bool:
        await gate.wait()
        return await second.run(task)

    ran = await asyncio.gather(first.run(task), other())
    assert ran == [True, False]
    assert runs == ["ran"]
    async with UnitOfWork(db.write_session) as uow:
        row = await uow.periodic.get(task.name)
        assert row is not None
        assert (row.runs, row.last_outcome, row.runner, row.last_error) == (1, "done", "a", None)
        assert row.next_run_at > datetime.now(UTC) + timedelta(seconds=55)
    # Not due again: a later tick of either process leaves it alone.
    assert await second.run(task) is False


async def test_a_failing_periodic_task_records_its_error_and_waits(db: Database) -> None:
    async def broken(uow: UnitOfWork, now: datetime) -> str:
        raise RuntimeError("boom")

    task = Periodic("tests.broken", timedelta(seconds=30), broken)
    scheduler = Scheduler(
        lambda: UnitOfWork(db.write_session),
        runner="a",
        now=lambda: datetime.now(UTC),
        tasks=[task],
    )
    wait = await scheduler.tick()
    assert 0 <= wait <= 1.0
    async with UnitOfWork(db.write_session) as uow:
        row = await uow.periodic.get(task.name)
        assert row is not None
        assert (row.runs, row.last_error) == (0, "RuntimeError: boom")
        assert row.next_run_at > datetime.now(UTC) + timedelta(seconds=25)


async def claim(uow: UnitOfWork, ids: list[int], worker: str) -> execution.Claims:
    return await execution.claim(
        uow, job_ids=ids, worker=worker, offered={"builtin.echo"}, metadata={}, limit=len(ids)
    )


async def test_outcomes_of_frequent_tasks_stay_out_of_the_info_log(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """The counters fold runs twice a second while jobs run: its outcome is kept on its
    row, logged at DEBUG; a task run every minute or less often logs at INFO."""

    async def folded(uow: UnitOfWork, now: datetime) -> str:
        return "folded 3 deltas"

    levels = {}
    for name, seconds in (("tests.often", 0.5), ("tests.hourly", 3600)):
        task = Periodic(name, timedelta(seconds=seconds), folded)
        scheduler = Scheduler(
            lambda: UnitOfWork(db.write_session),
            runner="a",
            now=lambda: datetime.now(UTC),
            tasks=[task],
        )
        async with UnitOfWork(db.write_session) as uow:
            await uow.periodic.ensure(task.name, interval_seconds=seconds, now=datetime.now(UTC))
            await uow.commit()
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger="domain.periodic.service"):
            assert await scheduler.run(task) is True
        [record] = [r for r in caplog.records if "folded 3 deltas" in r.getMessage()]
        levels[name] = record.levelno
        async with UnitOfWork(db.write_session) as uow:
            row = await uow.periodic.get(task.name)
            assert row is not None
            assert row.last_outcome == "folded 3 deltas"
    assert levels == {"tests.often": logging.DEBUG, "tests.hourly": logging.INFO}
