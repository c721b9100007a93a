"""The one path for job state changes (issue 9): sets of moves, bulk operations in a
constant number of statements, counters without a hot row, requirements, faults."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update

from db.enums import JobStatus
from db.models import Job, JobEvent
from db.repositories.batch import BatchRepository
from db.session import Database
from db.uow import UnitOfWork
from domain.batches import service as batches
from domain.errors import InvalidTransitionError
from domain.jobs import execution, moves, revisions
from domain.jobs import service as jobs
from domain.jobs.moves import Move
from domain.jobs.rules import Initiator
from domain.maintenance import service as maintenance
from domain.workers import service as workers
from tests.conftest import StatementCounter
from tests.factories import (
    ADMIN,
    RecordingDispatcher,
    fold_counters,
    live_nodes,
    make_batch,
    make_task_type,
    move_job,
    run_creation,
)

S = JobStatus


def one_node(task_type: str, n: int, **item: Any) -> dict[str, Any]:
    return {
        "recipe": {"nodes": [{"name": "n", "taskType": task_type}]},
        "inputs": [{"i": i, **item} for i in range(n)],
    }


def chain(n: int) -> dict[str, Any]:
    """a → b → c, n times."""
    return {
        "recipe": {
            "nodes": [
                {"name": "a", "taskType": "t"},
                {"name": "b", "taskType": "t", "dependsOn": ["a"]},
                {"name": "c", "taskType": "t", "dependsOn": ["b"]},
            ]
        },
        "inputs": [{"i": i} for i in range(n)],
    }


async def job_ids(db: Database, batch_id: int, node: str | None = None) -> list[int]:
    async with db.read_session() as s:
        stmt = select(Job.id).where(Job.batch_id == batch_id).order_by(Job.id)
        if node is not None:
            stmt = stmt.where(Job.node == node)
        return list(await s.scalars(stmt))


async def statuses(db: Database, batch_id: int) -> dict[JobStatus, int]:
    async with db.read_session() as s:
        rows = await s.execute(
            select(Job.status, func.count()).where(Job.batch_id == batch_id).group_by(Job.status)
        )
        return {status: int(n) for status, n in rows}


async def events(db: Database) -> int:
    async with db.read_session() as s:
        return int(await s.scalar(select(func.count()).select_from(JobEvent)) or 0)


async def counters_exact(db: Database, batch_id: int) -> None:
    """Live counters equal a recount, before and after folding."""
    actual = await statuses(db, batch_id)
    for fold in (False, True):
        if fold:
            await fold_counters(db)
        nodes = await live_nodes(db, batch_id)
        for status in JobStatus:
            assert sum(getattr(n, status.value.lower()) for n in nodes.values()) == actual.get(
                status, 0
            ), (status, fold)


async def test_one_refused_move_refuses_the_whole_set(db: Database) -> None:
    await make_task_type(db, "t")
    batch = await make_batch(db, one_node("t", 3))
    first, second, third = await job_ids(db, batch.id)
    async with UnitOfWork(db.write_session) as uow:
        await move_job(uow, second, S.RUNNING, Initiator.WORKER)
        await uow.commit()
    before = (await statuses(db, batch.id), await events(db))
    async with UnitOfWork(db.write_session) as uow:
        with pytest.raises(InvalidTransitionError) as refused:
            # QUEUED → RUNNING is fine for two of them; RUNNING → RUNNING is not.
            await moves.apply(
                uow,
                [Move(i, S.RUNNING, Initiator.WORKER, worker="w") for i in (first, second, third)],
            )
    assert f"Job {second}" in refused.value.message
    assert (await statuses(db, batch.id), await events(db)) == before
    await counters_exact(db, batch.id)


@pytest.mark.parametrize("operation", ["cancel", "retry", "create", "reprocess"])
async def test_bulk_operations_take_the_same_statements_for_5_or_300_jobs(
    db: Database, sql_counter: StatementCounter, operation: str
) -> None:
    await make_task_type(db, "t", implementation="builtin.echo")
    await make_task_type(db, "fails", implementation="builtin.fail")
    counts = []
    for n in (5, 300):
        task_type = "fails" if operation == "retry" else "t"
        definition = chain(n) if operation in ("cancel", "reprocess") else one_node(task_type, n)
        batch = None if operation == "create" else await make_batch(db, definition)
        if operation == "retry":  # every job failed
            async with UnitOfWork(db.write_session) as uow:
                await execution.finish(
                    uow,
                    [
                        execution.Finish(
                            c.job_id,
                            c.attempt,
                            "w",
                            execution.Outcome(failure=execution.TaskFailure("X", "x")),
                        )
                        for c in (
                            await execution.claim(
                                uow,
                                job_ids=await job_ids(db, batch.id),
                                worker="w",
                                offered={"builtin.fail"},
                                metadata={},
                                limit=n,
                            )
                        ).claimed
                    ],
                )
                await uow.commit()
        revisions.forget()  # both sizes read what the process caches: a fair count
        sql_counter.statements.clear()
        async with UnitOfWork(db.write_session, dispatcher=RecordingDispatcher()) as uow:
            if operation == "cancel":
                _, done = await batches.cancel_batch(
                    uow, batch_id=batch.id, reason="stop", actor=ADMIN
                )
                assert done == 3 * n
            elif operation == "retry":
                _, done = await batches.retry_batch(
                    uow, batch_id=batch.id, include_canceled=False, actor=ADMIN
                )
                assert done == n
            elif operation == "create":
                created = await batches.create_batch(
                    uow,
                    spec=batches.BatchSpec(
                        workspace="default", title="c", definition=one_node("t", n)
                    ),
                    actor=ADMIN,
                )
                assert created.validation.is_valid
            else:
                created = await batches.reprocess_batch(
                    uow,
                    root_batch_id=batch.id,
                    rerun=batches.RerunMode.ALL,
                    nodes=(),
                    title=None,
                    description="",
                    recipe=None,
                    priority=0,
                    actor=ADMIN,
                )
                assert created.validation.plan
            await uow.commit()
        counts.append(sql_counter.count)
    assert counts[0] == counts[1], (operation, counts)


async def test_counters_and_last_modified_follow_every_move(db: Database) -> None:
    await make_task_type(db, "t", implementation="builtin.echo")
    batch = await make_batch(db, one_node("t", 2))
    first, second = await job_ids(db, batch.id)

    async def last_modified() -> datetime:
        async with db.read_session() as s:
            [found] = await BatchRepository(s).last_changes([batch.id])
        assert found is not None
        return found

    seen = [await last_modified()]
    steps = [
        (first, S.RUNNING, Initiator.WORKER),
        (first, S.COMPLETED, Initiator.WORKER),
        (second, S.CANCELED, Initiator.USER),
    ]
    for job_id, target, by in steps:
        await asyncio.sleep(0.01)
        async with UnitOfWork(db.write_session) as uow:
            await move_job(uow, job_id, target, by)
            await uow.commit()
        seen.append(await last_modified())
        await counters_exact(db, batch.id)
    assert seen == sorted(seen)
    assert len(set(seen)) == len(seen)  # every change advanced it


async def test_an_implementation_no_connected_worker_offers_fails_at_dispatch(
    db: Database,
) -> None:
    async with UnitOfWork(db.write_session) as uow:
        await workers.register_fleet(
            uow,
            host="w1",
            concurrency=1,
            dynamic_metadata={"implementations": ["builtin.echo"]},
        )
        await uow.commit()
    await make_task_type(db, "broken", implementation="acme.not_installed")
    batch = await make_batch(db, one_node("broken", 2))
    async with db.read_session() as s:
        rows = (
            await s.execute(select(Job.status, Job.error_code).where(Job.batch_id == batch.id))
        ).all()
        ran = await s.scalar(
            select(func.count())
            .select_from(JobEvent)
            .where(JobEvent.batch_id == batch.id, JobEvent.to_status == S.RUNNING)
        )
    assert rows == [(S.FAILED, "UNKNOWN_IMPLEMENTATION")] * 2
    assert ran == 0  # never claimed, never RUNNING
    await counters_exact(db, batch.id)


async def test_requirements_keep_jobs_from_workers_that_do_not_meet_them(db: Database) -> None:
    await make_task_type(db, "arm", implementation="builtin.echo", requirements={"arch": "riscv"})
    batch = await make_batch(db, one_node("arm", 1))
    [job_id] = await job_ids(db, batch.id)
    async with UnitOfWork(db.write_session) as uow:
        worker = await workers.register_fleet(
            uow,
            host="x86",
            concurrency=1,
            dynamic_metadata={"arch": "x86_64", "implementations": ["builtin.echo"]},
        )
        await uow.commit()

    async def claim() -> execution.Claims:
        async with UnitOfWork(db.write_session) as uow:
            found = await execution.claim(
                uow,
                job_ids=[job_id],
                worker=worker.name,
                offered={"builtin.echo"},
                metadata={"arch": "x86_64"},
                limit=1,
            )
            await uow.commit()
        return found

    refused = await claim()
    assert (refused.claimed, refused.pass_on) == ([], [])  # nobody fits: it waits
    assert await statuses(db, batch.id) == {S.QUEUED: 1}
    # An admin says this worker is a riscv machine: static metadata wins.
    async with UnitOfWork(db.write_session) as uow:
        await workers.set_static_metadata(
            uow, worker_id=worker.id, metadata={"arch": "riscv"}, actor=ADMIN
        )
        await uow.commit()
    [claimed] = (await claim()).claimed
    assert claimed.job_id == job_id


async def test_overdue_jobs_go_back_even_on_a_live_worker(db: Database) -> None:
    await make_task_type(db, "slow", implementation="builtin.sleep", timeout_seconds=1)
    batch = await make_batch(db, one_node("slow", 1))
    [job_id] = await job_ids(db, batch.id)
    async with UnitOfWork(db.write_session) as uow:
        await move_job(uow, job_id, S.RUNNING, Initiator.WORKER)
        await uow.commit()
    async with db.engine.begin() as conn:  # it has run for a minute, its worker silent
        await conn.execute(update(Job).values(started_at=datetime.now(UTC) - timedelta(minutes=1)))
    sent = RecordingDispatcher()
    async with UnitOfWork(db.write_session, dispatcher=sent) as uow:
        done = await maintenance.take_back_overdue(uow, datetime.now(UTC))
        await uow.commit()
    assert done == "1 overdue jobs taken back"
    async with db.read_session() as s:
        job = await s.scalar(select(Job).where(Job.id == job_id))
    assert job is not None
    assert (job.status, job.attempt) == (S.QUEUED, 2)  # maxAttempts 3: a new attempt
    assert ("jobs.run", (job_id,)) in sent.sent
    await counters_exact(db, batch.id)


async def test_cancel_during_creation_stops_it_with_exact_counters(db: Database) -> None:
    await make_task_type(db, "t")
    batch = await make_batch(db, one_node("t", batches.CHUNK_SIZE + 10), finish_creation=False)
    async with UnitOfWork(db.write_session) as uow:
        await batches.create_chunk(uow, batch_id=batch.id, cursor=0)
        await uow.commit()
    async with UnitOfWork(db.write_session) as uow:
        _, canceled = await batches.cancel_batch(uow, batch_id=batch.id, reason="x", actor=ADMIN)
        await uow.commit()
    assert canceled == batches.CHUNK_SIZE
    await run_creation(db, batch.id, cursor=batches.CHUNK_SIZE)
    assert await statuses(db, batch.id) == {S.CANCELED: batches.CHUNK_SIZE}
    async with db.read_session() as s:
        found = await BatchRepository(s).get(batch.id)
    assert found is not None
    assert found.is_creation_done
    await counters_exact(db, batch.id)


async def test_cancel_racing_group_finishes_keeps_counters_exact(db: Database) -> None:
    await make_task_type(db, "t", implementation="builtin.echo")
    batch = await make_batch(db, one_node("t", 200))
    ids = await job_ids(db, batch.id)

    async def worker(part: list[int]) -> None:
        async with UnitOfWork(db.write_session) as uow:
            claims = await execution.claim(
                uow, job_ids=part, worker="w", offered={"builtin.echo"}, metadata={}, limit=50
            )
            await uow.commit()
        async with UnitOfWork(db.write_session) as uow:
            await execution.finish(
                uow,
                [
                    execution.Finish(c.job_id, c.attempt, "w", execution.Outcome(result={}))
                    for c in claims.claimed
                ],
            )
            await uow.commit()

    async def cancel() -> bool:
        await asyncio.sleep(0.01)
        async with UnitOfWork(db.write_session) as uow:
            try:
                await batches.cancel_batch(uow, batch_id=batch.id, reason="x", actor=ADMIN)
            except InvalidTransitionError:  # every job had finished first
                return False
            await uow.commit()
        return True

    *_, canceled = await asyncio.gather(
        *(worker(ids[i : i + 50]) for i in range(0, 200, 50)), cancel()
    )
    found = await statuses(db, batch.id)
    assert set(found) <= ({S.COMPLETED, S.CANCELED} if canceled else {S.COMPLETED})
    assert sum(found.values()) == 200
    await counters_exact(db, batch.id)


async def test_retry_a_batch_reopens_failures_and_what_they_canceled(db: Database) -> None:
    await make_task_type(db, "t", implementation="builtin.echo")
    batch = await make_batch(db, chain(2))
    [a0, a1] = await job_ids(db, batch.id, "a")
    async with UnitOfWork(db.write_session) as uow:
        await move_job(uow, a0, S.RUNNING, Initiator.WORKER)
        await move_job(uow, a0, S.FAILED, Initiator.WORKER)
        await uow.commit()
    assert await statuses(db, batch.id) == {S.FAILED: 1, S.CANCELED: 2, S.QUEUED: 1, S.BLOCKED: 2}
    async with UnitOfWork(db.write_session, dispatcher=RecordingDispatcher()) as uow:
        _, retried = await batches.retry_batch(
            uow, batch_id=batch.id, include_canceled=False, actor=ADMIN
        )
        await uow.commit()
    assert retried == 1
    # a0 is queued again (attempt 2); b0 and c0 wait for it again.
    assert await statuses(db, batch.id) == {S.QUEUED: 2, S.BLOCKED: 4}
    async with db.read_session() as s:
        attempt = await s.scalar(select(Job.attempt).where(Job.id == a0))
    assert attempt == 2
    assert a1 in await job_ids(db, batch.id)
    await counters_exact(db, batch.id)


async def test_retry_job_and_cancel_job_report_the_job_as_it_is(db: Database) -> None:
    await make_task_type(db, "t", implementation="builtin.echo")
    batch = await make_batch(db, one_node("t", 1))
    [job_id] = await job_ids(db, batch.id)
    async with UnitOfWork(db.write_session) as uow:
        canceled = await jobs.cancel_job(uow, job_id=job_id, reason="no", actor=ADMIN)
        await uow.commit()
    assert canceled.status is S.CANCELED
    async with UnitOfWork(db.write_session, dispatcher=RecordingDispatcher()) as uow:
        retried = await jobs.retry_job(uow, job_id=job_id, actor=ADMIN)
        await uow.commit()
    assert (retried.status, retried.attempt) == (S.QUEUED, 2)
    await counters_exact(db, batch.id)


async def test_a_bulk_move_keeps_to_the_statuses_the_rules_allow(db: Database) -> None:
    """A selection's condition that admits more than ``from_statuses`` moves only the
    jobs in them: the statement, not its caller's SQL, holds the transition table."""
    await make_task_type(db, "t", implementation="builtin.echo")
    batch = await make_batch(db, one_node("t", 2))
    done, waiting = await job_ids(db, batch.id)
    async with UnitOfWork(db.write_session) as uow:
        await move_job(uow, done, S.RUNNING, Initiator.WORKER)
        await move_job(uow, done, S.COMPLETED, Initiator.WORKER)
        await uow.commit()
    async with UnitOfWork(db.write_session) as uow:
        applied = await moves.apply_selected(
            uow,
            moves.Selection(where="j.batch_id = :batch", params={"batch": batch.id}),
            moves.BulkChange(S.CANCELED, reason="x"),
            initiator=Initiator.USER,
            from_statuses=[S.QUEUED],
            settle_after=False,
        )
        await uow.commit()
    assert [m.id for m in applied.moved] == [waiting]
    assert await statuses(db, batch.id) == {S.COMPLETED: 1, S.CANCELED: 1}
    await counters_exact(db, batch.id)


async def test_a_job_found_locked_is_asked_again_not_dropped(db: Database) -> None:
    """A claim that skips a job another transaction holds (here not a claim: a plain row
    lock) passes it on, so it is sent again shortly instead of waiting for the resend."""
    await make_task_type(db, "t", implementation="builtin.echo")
    batch = await make_batch(db, one_node("t", 1))
    [job_id] = await job_ids(db, batch.id)
    async with db.engine.connect() as holder:
        transaction = await holder.begin()
        await holder.execute(
            select(Job.id).where(Job.id == job_id).with_for_update(key_share=False)
        )
        async with UnitOfWork(db.write_session) as uow:
            found = await execution.claim(
                uow, job_ids=[job_id], worker="w", offered={"builtin.echo"}, metadata={}, limit=1
            )
            await uow.commit()
        await transaction.rollback()
    assert (found.claimed, found.pass_on) == ([], [job_id])
    assert await statuses(db, batch.id) == {S.QUEUED: 1}
