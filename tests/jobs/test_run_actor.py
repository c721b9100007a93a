"""jobs.run, called directly: claim, run the implementation, record the outcome."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select

from db.enums import JobStatus
from db.models import Job
from db.session import Database
from db.uow import UnitOfWork
from domain.batches import service as batches
from domain.jobs import execution
from domain.jobs import service as jobs
from jobs import runtime
from jobs.actors.run import run
from tests.factories import ADMIN, RecordingDispatcher, make_batch, make_task_type

S = JobStatus


@pytest.fixture
async def sent(database_url: str) -> AsyncIterator[RecordingDispatcher]:
    runtime.configure(database_url)
    found = RecordingDispatcher()
    runtime.use_dispatcher(found)
    yield found
    runtime.use_dispatcher(None)
    await runtime.dispose()


def one_node(task_type: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"recipe": {"nodes": [{"name": "n", "taskType": task_type}]}, "inputs": items}


async def jobs_of(db: Database, batch_id: int) -> list[Job]:
    async with db.read_session() as s:
        return list(await s.scalars(select(Job).where(Job.batch_id == batch_id).order_by(Job.id)))


async def test_echo_runs_a_dag_to_completion(db: Database, sent: RecordingDispatcher) -> None:
    await make_task_type(db, "echo", implementation="builtin.echo")
    definition = {
        "recipe": {
            "nodes": [
                {"name": "a", "taskType": "echo"},
                {
                    "name": "b",
                    "taskType": "echo",
                    "dependsOn": ["a"],
                    "parameters": {"from": "{{item.v}}"},
                },
            ]
        },
        "inputs": [{"v": 1}],
    }
    batch = await make_batch(db, definition)
    a, b = await jobs_of(db, batch.id)
    assert (a.status, b.status) == (S.QUEUED, S.BLOCKED)
    await run(a.id)
    a, b = await jobs_of(db, batch.id)
    assert (a.status, a.result, a.worker is not None) == (S.COMPLETED, {"v": 1}, True)
    assert b.status is S.QUEUED  # unblocked and dispatched...
    assert ("jobs.run", (b.id,)) in sent.sent  # ...with its message, after the commit
    await run(b.id)
    await run(b.id)  # a duplicate message does nothing
    _, b = await jobs_of(db, batch.id)
    assert (b.status, b.result, b.attempt) == (S.COMPLETED, {"from": 1}, 1)


@pytest.mark.parametrize(
    ("implementation", "params", "limit", "code"),
    [
        ("builtin.fail", {"code": "BAD_IMAGE"}, None, "BAD_IMAGE"),
        ("acme.not_installed", {}, None, "UNKNOWN_IMPLEMENTATION"),
        ("builtin.sleep", {"seconds": 5}, 1, "TIMEOUT"),
    ],
)
async def test_failures_are_recorded_with_their_code(
    db: Database,
    sent: RecordingDispatcher,
    implementation: str,
    params: dict[str, Any],
    limit: int | None,
    code: str,
) -> None:
    await make_task_type(
        db, "t", implementation=implementation, max_attempts=1, timeout_seconds=limit
    )
    batch = await make_batch(db, one_node("t", [params]))
    [job] = await jobs_of(db, batch.id)
    await run(job.id)
    [job] = await jobs_of(db, batch.id)
    assert (job.status, job.error_code) == (S.FAILED, code)


async def test_retryable_failures_retry_with_backoff_until_attempts_run_out(
    db: Database, sent: RecordingDispatcher
) -> None:
    await make_task_type(db, "flaky", implementation="builtin.fail", max_attempts=2)
    batch = await make_batch(db, one_node("flaky", [{"category": "INFRASTRUCTURE"}]))
    [job] = await jobs_of(db, batch.id)
    await run(job.id)
    [job] = await jobs_of(db, batch.id)
    assert (job.status, job.attempt) == (S.QUEUED, 2)
    assert sent.sent[-1] == ("jobs.run", (job.id,))
    await run(job.id)
    [job] = await jobs_of(db, batch.id)
    assert (job.status, job.attempt, job.error_code) == (S.FAILED, 2, "FAILED_ON_PURPOSE")
    assert [execution.backoff_ms(n) for n in (1, 2, 3, 10)] == [1000, 2000, 4000, 60_000]


async def test_a_result_against_the_schema_fails_the_job(
    db: Database, sent: RecordingDispatcher
) -> None:
    await make_task_type(
        db,
        "strict",
        implementation="builtin.echo",
        result_schema={"type": "object", "required": ["url"]},
    )
    batch = await make_batch(db, one_node("strict", [{"size": 3}]))
    [job] = await jobs_of(db, batch.id)
    await run(job.id)
    [job] = await jobs_of(db, batch.id)
    assert (job.status, job.error_code, job.result) == (S.FAILED, "RESULT_INVALID", None)


async def test_a_job_canceled_while_running_keeps_its_cancel(
    db: Database, sent: RecordingDispatcher
) -> None:
    await make_task_type(db, "echo", implementation="builtin.echo")
    batch = await make_batch(db, one_node("echo", [{"x": 1}]))
    [job] = await jobs_of(db, batch.id)
    async with UnitOfWork(db.write_session) as uow:
        claims = await execution.claim(
            uow, job_ids=[job.id], worker="w", offered={"builtin.echo"}, metadata={}, limit=1
        )
        await uow.commit()
    [claimed] = claims.claimed
    async with UnitOfWork(db.write_session) as uow:
        await jobs.cancel_job(uow, job_id=job.id, reason="stop", actor=ADMIN)
        await uow.commit()
    async with UnitOfWork(db.write_session) as uow:
        ended = await execution.finish(
            uow,
            [execution.Finish(job.id, claimed.attempt, "w", execution.Outcome(result={"x": 1}))],
        )
        await uow.commit()
    assert ended == {job.id: None}
    [job] = await jobs_of(db, batch.id)
    assert (job.status, job.result) == (S.CANCELED, None)


async def test_external_jobs_wait_for_pull_workers_and_parallelism_is_capped(
    db: Database,
) -> None:
    await make_task_type(db, "ext")  # implementation "external"
    await make_task_type(db, "echo", implementation="builtin.echo")
    recording = RecordingDispatcher()
    async with UnitOfWork(db.write_session, dispatcher=recording) as uow:
        created = await batches.create_batch(
            uow,
            spec=batches.BatchSpec(
                workspace="default",
                title="capped",
                definition=one_node("echo", [{}] * 5),
                max_parallel_jobs=2,
            ),
            actor=ADMIN,
        )
        await uow.commit()
    assert created.batch is not None
    async with UnitOfWork(db.write_session, dispatcher=recording) as uow:
        await batches.create_chunk(uow, batch_id=created.batch.id, cursor=0)
        await uow.commit()
    statuses = [j.status for j in await jobs_of(db, created.batch.id)]
    assert statuses == [S.QUEUED, S.QUEUED, S.PENDING, S.PENDING, S.PENDING]
    assert [m for m in recording.sent if m[0] == "jobs.run"] == [
        ("jobs.run", (j.id,)) for j in (await jobs_of(db, created.batch.id))[:2]
    ]

    external = await make_batch(db, one_node("ext", [{}]))
    [job] = await jobs_of(db, external.id)
    assert job.status is S.QUEUED  # waiting for a pull worker: no fleet message


async def test_a_running_job_canceled_meanwhile_is_stopped_cooperatively(
    db: Database, sent: RecordingDispatcher
) -> None:
    await make_task_type(db, "long", implementation="builtin.sleep")
    batch = await make_batch(db, one_node("long", [{"seconds": 30}]))
    [job] = await jobs_of(db, batch.id)
    running = asyncio.create_task(run(job.id))
    for _ in range(50):
        [job] = await jobs_of(db, batch.id)
        if job.status is S.RUNNING:
            break
        await asyncio.sleep(0.05)
    async with UnitOfWork(db.write_session) as uow:
        await jobs.cancel_job(uow, job_id=job.id, reason="not needed", actor=ADMIN)
        await uow.commit()
    # It stops at its next check, long before the 30 s sleep would have ended.
    await asyncio.wait_for(running, 10)
    [job] = await jobs_of(db, batch.id)
    assert (job.status, job.result, job.error_code) == (S.CANCELED, None, None)


async def test_the_fleet_records_the_implementations_own_time(
    db: Database, sent: RecordingDispatcher
) -> None:
    """The run duration is measured around the implementation call: the sleep itself,
    within the job's completed − started (which also holds the claim and the commit)."""
    await make_task_type(db, "nap", implementation="builtin.sleep")
    batch = await make_batch(db, one_node("nap", [{"seconds": 0.2}]))
    [job] = await jobs_of(db, batch.id)
    await run(job.id)
    [job] = await jobs_of(db, batch.id)
    assert job.status is S.COMPLETED
    assert job.run_seconds is not None
    assert job.started_at is not None
    assert job.completed_at is not None
    assert 0.2 <= job.run_seconds <= (job.completed_at - job.started_at).total_seconds()
