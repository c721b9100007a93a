"""A PostgreSQL restart mid-batch strands no job: every one completes, exactly once.

A private PostgreSQL (pgserver's binaries, managed with pg_ctl in a folder of its own)
and a private Redis that this test starts, a real `batchgraph worker` process, and
jobs that take half a second: the database is stopped hard (``pg_ctl stop -m
immediate``) while jobs run, stays away for a few seconds, and comes back. Outcomes
reached while it was away must be written once it is back (issue 7, "Faults").
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest
from sqlalchemy import func, select

from bench.private import Fleet, PrivatePostgres, PrivateRedis, Unavailable, worker_env
from db.enums import JobStatus
from db.models import Job, JobEvent, Worker
from db.session import Database, connect
from db.uow import UnitOfWork
from tests.conftest import require_service
from tests.factories import ADMIN, make_task_type

T = TypeVar("T")
JOBS = 36
SLEEP_SECONDS = 0.5
DOWN_SECONDS = 6.0


async def _poll(check: Callable[[], Awaitable[T | None]], seconds: float, what: str) -> T:
    """``check`` until it returns something; a failing read (the database is away) is "not yet"."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            found = await check()
        except Exception:  # the database restarting: the pool reconnects on the next try
            found = None
        if found:
            return found
        await asyncio.sleep(0.1)
    pytest.fail(f"timed out after {seconds:.0f} s waiting for {what}")


async def _statuses(db: Database, batch_id: int) -> dict[int, tuple[JobStatus, int]]:
    async with db.read_session() as s:
        rows = await s.execute(
            select(Job.id, Job.status, Job.attempt).where(Job.batch_id == batch_id)
        )
    return {int(i): (status, int(attempt)) for i, status, attempt in rows}


def _start_services() -> tuple[PrivatePostgres, PrivateRedis]:
    pg: PrivatePostgres | None = None
    redis: PrivateRedis | None = None
    try:
        pg = PrivatePostgres()
        pg.start()
        redis = PrivateRedis()
        redis.start()
    except Unavailable as exc:
        for started in (pg, redis):
            if started is not None:
                started.close()
        require_service("a private PostgreSQL and Redis", str(exc))
    assert pg is not None
    assert redis is not None
    return pg, redis


async def test_a_postgresql_restart_mid_batch_strands_no_job_and_completes_each_once(
    tmp_path: Path,
) -> None:
    from domain.batches import service as batches
    from domain.jobs import revisions
    from jobs.broker import build_broker
    from jobs.dispatch import DramatiqDispatcher
    from launcher.runtime import migrate

    revisions.forget()  # cached revision rows belong to the suite's database, not this one
    pg, redis = await asyncio.to_thread(_start_services)
    fleet: Fleet | None = None
    db: Database | None = None
    broker = None
    try:
        url = await asyncio.to_thread(pg.create_database, "batchgraph")
        await asyncio.to_thread(migrate, url)
        db = connect(url, pool_size=2, max_overflow=2)
        fleet = Fleet(worker_env(url, redis.url), tmp_path / "worker.log", threads=4)

        async def registered() -> bool:
            async with db.read_session() as s:
                connected = await s.scalar(
                    select(func.count()).select_from(Worker).where(Worker.connected_at.is_not(None))
                )
            return bool(connected)

        await _poll(registered, 60, "the worker to register")
        await make_task_type(db, "nap", implementation="builtin.sleep", max_attempts=3)
        broker = build_broker(redis.url)
        async with UnitOfWork(db.write_session, dispatcher=DramatiqDispatcher(broker)) as uow:
            created = await batches.create_batch(
                uow,
                spec=batches.BatchSpec(
                    workspace="default",
                    title="through a database restart",
                    definition={
                        "recipe": {"nodes": [{"name": "n", "taskType": "nap"}]},
                        "inputs": [{"seconds": SLEEP_SECONDS, "i": i} for i in range(JOBS)],
                    },
                ),
                actor=ADMIN,
            )
            await uow.commit()
        assert created.batch is not None
        batch_id = created.batch.id

        async def mid_batch() -> dict[int, tuple[JobStatus, int]] | None:
            found = await _statuses(db, batch_id)
            by_status = [s for s, _ in found.values()]
            done = by_status.count(JobStatus.COMPLETED)
            running = by_status.count(JobStatus.RUNNING)
            return found if len(found) == JOBS and done >= 4 and running >= 1 else None

        before = await _poll(mid_batch, 60, "jobs to be running mid-batch")
        await asyncio.to_thread(pg.stop, "immediate")  # every server process quits at once
        await asyncio.sleep(DOWN_SECONDS)
        await asyncio.to_thread(pg.start)
        running_then = sorted(i for i, (s, _) in before.items() if s is JobStatus.RUNNING)

        async def all_ended() -> dict[int, tuple[JobStatus, int]] | None:
            found = await _statuses(db, batch_id)
            ended = {JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELED}
            return found if all(s in ended for s, _ in found.values()) else None

        final = await _poll(all_ended, 45, "every job to end after the restart")
        async with db.read_session() as s:
            completions = dict(
                (
                    await s.execute(
                        select(JobEvent.job_id, func.count())
                        .join(Job, Job.id == JobEvent.job_id)
                        .where(Job.batch_id == batch_id, JobEvent.to_status == JobStatus.COMPLETED)
                        .group_by(JobEvent.job_id)
                    )
                ).all()
            )
        assert running_then, "no job was running when the database went away"
        assert {s for s, _ in final.values()} == {JobStatus.COMPLETED}, final
        assert completions == dict.fromkeys(final, 1)  # each job completed exactly once
        # No outcome was lost to the dead connections: nothing had to run a second time.
        assert {a for _, a in final.values()} == {1}, final
    finally:
        if fleet is not None:
            await asyncio.to_thread(fleet.stop)
        if broker is not None:
            broker.close()
        if db is not None:
            await db.dispose()
        await asyncio.to_thread(pg.close)
        await asyncio.to_thread(redis.close)
        revisions.forget()
