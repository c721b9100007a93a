"""The job state machine's consequences (SPEC §2) and the counters (SPEC §3)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import func, select

from db.enums import JobStatus, RerunMode
from db.models import Batch, Job, JobEvent
from db.repositories.batch import BatchRepository
from db.session import Database
from db.uow import UnitOfWork
from domain.batches import service as batches
from domain.errors import InvalidTransitionError
from domain.jobs import service as jobs
from domain.jobs.rules import Initiator
from tests.factories import (
    ADMIN,
    RESIZE_SCHEMA,
    fold_counters,
    live_nodes,
    make_batch,
    make_task_type,
    move_job,
    two_node_definition,
)

S = JobStatus
ITEMS = [{"url": f"u{i}", "width": 5} for i in range(4)]


@pytest.fixture
async def batch(db: Database) -> Batch:
    await make_task_type(db, "resize", parameters_schema=RESIZE_SCHEMA)
    await make_task_type(db, "thumb")
    return await make_batch(db, two_node_definition(ITEMS))  # type: ignore[no-any-return]


async def _jobs(db: Database, batch_id: int) -> dict[tuple[int, str], Job]:
    async with db.read_session() as s:
        rows = await s.scalars(select(Job).where(Job.batch_id == batch_id))
        return {(j.recipe_id, j.node): j for j in rows}


async def move(db: Database, job_id: int, *steps: tuple[JobStatus, Initiator]) -> None:
    for target, initiator in steps:
        async with UnitOfWork(db.write_session) as uow:
            await move_job(uow, job_id, target, initiator, worker="w1")
            await uow.commit()


# Created (and unblocked) jobs are dispatched at once: they start QUEUED.
RUN = ((S.RUNNING, Initiator.WORKER),)


async def recount_matches(db: Database, batch_id: int) -> None:
    """The maintained counters equal a recount of the jobs."""
    async with db.read_session() as s:
        actual = {
            (n, st): c
            for n, st, c in (
                await s.execute(
                    select(Job.node, Job.status, func.count())
                    .where(Job.batch_id == batch_id)
                    .group_by(Job.node, Job.status)
                )
            ).all()
        }
    # As readers see them (folded + pending deltas), and the same once everything is
    # folded into the node rows.
    for fold in (False, True):
        if fold:
            await fold_counters(db)
        for node in (await live_nodes(db, batch_id)).values():
            for status in JobStatus:
                assert getattr(node, status.value.lower()) == actual.get((node.node, status), 0), (
                    node.node,
                    status,
                    fold,
                )


async def test_completing_a_dependency_unblocks_and_failing_one_cancels(
    db: Database, batch: Batch
) -> None:
    found = await _jobs(db, batch.id)
    recipes = sorted({r for r, _ in found})
    ok, bad = recipes[0], recipes[1]

    await move(db, found[(ok, "resize")].id, *RUN, (S.COMPLETED, Initiator.WORKER))
    await move(db, found[(bad, "resize")].id, *RUN, (S.FAILED, Initiator.WORKER))
    after = await _jobs(db, batch.id)
    assert after[(ok, "thumb")].status is S.QUEUED  # BLOCKED → PENDING → dispatched
    assert after[(bad, "thumb")].status is S.CANCELED
    assert after[(bad, "thumb")].canceled_by_dependency is True
    assert after[(ok, "resize")].worker == "w1"
    await recount_matches(db, batch.id)

    async with db.read_session() as s:
        history = [
            (e.from_status, e.to_status)
            for e in await s.scalars(
                select(JobEvent)
                .where(JobEvent.job_id == found[(bad, "thumb")].id)
                .order_by(JobEvent.id)
            )
        ]
        reasons = list(
            await s.scalars(
                select(JobEvent.reason)
                .where(JobEvent.job_id == found[(bad, "thumb")].id)
                .order_by(JobEvent.id)
            )
        )
    assert history == [(None, S.BLOCKED), (S.BLOCKED, S.CANCELED)]
    assert reasons[-1] == "dependency resize failed"

    # Retrying the failed job is a new attempt, and revives what it had canceled.
    async with UnitOfWork(db.write_session) as uow:
        retried = await jobs.retry_job(uow, job_id=found[(bad, "resize")].id, actor=ADMIN)
        await uow.commit()
    assert (retried.status, retried.attempt) == (S.QUEUED, 2)  # retried, then dispatched
    assert retried.started_at is None
    revived = await _jobs(db, batch.id)
    assert revived[(bad, "thumb")].status is S.BLOCKED
    await recount_matches(db, batch.id)


async def test_durations_and_recipe_completion(db: Database, batch: Batch) -> None:
    found = await _jobs(db, batch.id)
    recipe = min(r for r, _ in found)
    for node in ("resize", "thumb"):
        await move(db, found[(recipe, node)].id, *RUN, (S.COMPLETED, Initiator.WORKER))
    node = (await live_nodes(db, batch.id))["resize"]
    async with db.read_session() as s:
        assert await BatchRepository(s).completed_recipe_counts([batch.id]) == [1]
    assert node.run_seconds_count == 1
    assert node.job_seconds_count == 1
    assert node.run_seconds_min is not None
    assert node.job_seconds_max is not None
    assert 0 <= node.run_seconds_min <= node.job_seconds_max


@pytest.mark.parametrize(
    ("steps", "refused"),
    [
        ((), (S.QUEUED, Initiator.SYSTEM)),  # already queued
        ((*RUN,), (S.RUNNING, Initiator.WORKER)),  # RUNNING only from QUEUED
        ((*RUN, (S.COMPLETED, Initiator.WORKER)), (S.CANCELED, Initiator.USER)),
        ((*RUN,), (S.QUEUED, Initiator.USER)),  # only the system re-queues
    ],
)
async def test_invalid_transitions_raise_and_change_nothing(
    db: Database, batch: Batch, steps: Any, refused: tuple[JobStatus, Initiator]
) -> None:
    job_id = min(j.id for (_, n), j in (await _jobs(db, batch.id)).items() if n == "resize")
    await move(db, job_id, *steps)
    async with db.read_session() as s:
        before = await s.scalar(select(func.count()).select_from(JobEvent))
    with pytest.raises(InvalidTransitionError):
        await move(db, job_id, refused)
    async with db.read_session() as s:
        assert await s.scalar(select(func.count()).select_from(JobEvent)) == before
    await recount_matches(db, batch.id)


async def test_cancel_completed_job_is_an_invalid_transition(db: Database, batch: Batch) -> None:
    job_id = min(j.id for (_, n), j in (await _jobs(db, batch.id)).items() if n == "resize")
    await move(db, job_id, *RUN, (S.COMPLETED, Initiator.WORKER))
    async with UnitOfWork(db.write_session) as uow:
        with pytest.raises(InvalidTransitionError):
            await jobs.cancel_job(uow, job_id=job_id, reason=None, actor=ADMIN)
    async with UnitOfWork(db.write_session) as uow:
        with pytest.raises(InvalidTransitionError):
            await jobs.retry_job(uow, job_id=job_id, actor=ADMIN)


async def test_counters_stay_exact_under_concurrent_transitions(db: Database) -> None:
    await make_task_type(db, "resize", parameters_schema=RESIZE_SCHEMA)
    await make_task_type(db, "thumb")
    many = await make_batch(db, two_node_definition([{"url": "u", "width": 1}] * 40))
    found = await _jobs(db, many.id)
    roots = sorted(j.id for (_, n), j in found.items() if n == "resize")

    async def worker(ids: list[int], final: JobStatus) -> None:
        for job_id in ids:
            await move(db, job_id, *RUN, (final, Initiator.WORKER))

    # Eight concurrent transactions streams touching the same counter rows.
    await asyncio.gather(
        *(worker(roots[i::8], S.COMPLETED if i % 2 else S.FAILED) for i in range(8))
    )
    await recount_matches(db, many.id)
    node = (await live_nodes(db, many.id))["thumb"]
    assert (node.queued, node.canceled, node.blocked) == (20, 20, 0)


async def test_reprocessing_the_failed_part_of_a_chain(db: Database, batch: Batch) -> None:
    found = await _jobs(db, batch.id)
    recipes = sorted({r for r, _ in found})
    for r in recipes[:3]:
        await move(db, found[(r, "resize")].id, *RUN, (S.COMPLETED, Initiator.WORKER))
        await move(db, found[(r, "thumb")].id, *RUN, (S.COMPLETED, Initiator.WORKER))
    await move(db, found[(recipes[3], "resize")].id, *RUN, (S.COMPLETED, Initiator.WORKER))
    await move(db, found[(recipes[3], "thumb")].id, *RUN, (S.FAILED, Initiator.WORKER))

    second = await make_batch(
        db,
        None,
        title="again",
        previous=batches.PreviousBatch(root_batch_id=batch.id, rerun=RerunMode.FAILED),
    )
    async with db.read_session() as s:
        first = await s.scalar(select(Batch).where(Batch.id == batch.id))
        rerun = list(await s.scalars(select(Job).where(Job.batch_id == second.id)))
    assert first is not None
    assert first.is_superseded is True
    assert first.superseded_at is not None
    assert (second.root_batch_id, second.superseded_batch_id) == (batch.id, batch.id)
    assert second.recipes_estimated == 4  # the previous batch's total
    # Only the failed recipe, and in it only the node that did not complete.
    assert [(j.node, j.status) for j in rerun] == [("thumb", S.QUEUED)]

    # The chain is named by its root; a non-root id is not found.
    third = await make_batch(
        db,
        None,
        title="all again",
        previous=batches.PreviousBatch(root_batch_id=batch.id, rerun=RerunMode.ALL),
    )
    assert third.superseded_batch_id == second.id
    with pytest.raises(batches.InvalidBatchError) as refused:
        await make_batch(db, None, previous=batches.PreviousBatch(root_batch_id=second.id))
    assert [e.name for e in refused.value.validation.errors] == ["PREV_BATCH_NOT_FOUND"]


async def test_reprocessing_waits_for_creation_and_reports_the_diff(db: Database) -> None:
    await make_task_type(db, "resize", parameters_schema=RESIZE_SCHEMA)
    await make_task_type(db, "thumb")
    first = await make_batch(db, two_node_definition(ITEMS), finish_creation=False)
    with pytest.raises(batches.InvalidBatchError) as refused:
        await make_batch(db, None, previous=batches.PreviousBatch(root_batch_id=first.id))
    assert [e.name for e in refused.value.validation.errors] == ["PREV_BATCH_STILL_CREATING"]
    async with db.read_session() as s:
        assert (await s.scalar(select(Batch.is_superseded).where(Batch.id == first.id))) is False

    from tests.factories import run_creation

    await run_creation(db, first.id)
    # A new revision of thumb: that node is CHANGED, and runs again even in NODES mode.
    from domain.tasktypes import service as tasktypes

    async with UnitOfWork(db.write_session) as uow:
        thumb = await uow.task_types.get_by_name(first.workspace_id, "thumb")
        assert thumb is not None
        await tasktypes.create_revision(
            uow,
            task_type_id=thumb.id,
            changes=tasktypes.RevisionChanges(description="faster"),
            actor=ADMIN,
        )
        await uow.commit()
    async with UnitOfWork(db.write_session) as uow:
        plan = await batches.validate_batch(
            uow,
            spec=batches.BatchSpec(
                workspace="default",
                title="t",
                previous=batches.PreviousBatch(first.id, RerunMode.NODES, ("nothing-here",)),
            ),
            actor=ADMIN,
        )
    assert [(d.node, d.status.value, d.reasons) for d in plan.diff] == [
        ("resize", "UNCHANGED", ()),
        ("thumb", "CHANGED", ("task type revision 1 → 2",)),
    ]
    assert {w.name for w in plan.warnings} >= {"NODES_NOT_IN_RECIPE"}
    assert {r.nodes for r in plan.plan} == {("thumb",)}


async def test_retry_does_not_revive_a_job_another_failed_dependency_still_blocks(
    db: Database,
) -> None:
    await make_task_type(db, "step")
    definition = {
        "recipe": {
            "nodes": [
                # listed dependant-first: creation orders them by the DAG anyway
                {"name": "c", "taskType": "step", "dependsOn": ["a", "b"]},
                {"name": "a", "taskType": "step"},
                {"name": "b", "taskType": "step"},
            ]
        },
        "inputs": [{}],
    }
    batch = await make_batch(db, definition)
    found = {n: j for (_, n), j in (await _jobs(db, batch.id)).items()}
    assert found["a"].id < found["b"].id < found["c"].id  # ids follow the DAG
    await move(db, found["a"].id, *RUN, (S.FAILED, Initiator.WORKER))
    await move(db, found["b"].id, *RUN, (S.FAILED, Initiator.WORKER))
    async with UnitOfWork(db.write_session) as uow:
        await jobs.retry_job(uow, job_id=found["a"].id, actor=ADMIN)
        await uow.commit()
    after = {n: j for (_, n), j in (await _jobs(db, batch.id)).items()}
    # b is still failed: c stays canceled instead of waiting forever.
    assert (after["a"].status, after["c"].status) == (S.QUEUED, S.CANCELED)
    async with UnitOfWork(db.write_session) as uow:
        with pytest.raises(InvalidTransitionError):
            await jobs.retry_job(uow, job_id=found["c"].id, actor=ADMIN)
    async with UnitOfWork(db.write_session) as uow:
        await jobs.retry_job(uow, job_id=found["b"].id, actor=ADMIN)
        await uow.commit()
    # With no failed dependency left, retrying b revived c: it waits for a and b.
    final = {n: j for (_, n), j in (await _jobs(db, batch.id)).items()}
    assert final["c"].status is S.BLOCKED
    await recount_matches(db, batch.id)


async def test_completions_racing_creation_and_cancellation_do_not_deadlock(
    db: Database,
) -> None:
    """Transitions never write the batch row, which creation and cancellation lock."""
    await make_task_type(db, "resize", parameters_schema=RESIZE_SCHEMA)
    await make_task_type(db, "thumb")
    items = [{"url": "u", "width": 1}] * 30
    batch = await make_batch(
        db, {"recipe": {"nodes": [{"name": "resize", "taskType": "resize"}]}, "inputs": items}
    )
    ids = sorted(j.id for j in (await _jobs(db, batch.id)).values())

    async def complete(job_id: int) -> None:
        await move(db, job_id, *RUN, (S.COMPLETED, Initiator.WORKER))

    async def cancel() -> None:
        await asyncio.sleep(0.01)
        async with UnitOfWork(db.write_session) as uow:
            await batches.cancel_batch(uow, batch_id=batch.id, reason=None, actor=ADMIN)
            await uow.commit()

    results = await asyncio.wait_for(
        asyncio.gather(*(complete(i) for i in ids[:20]), cancel(), return_exceptions=True), 30
    )
    unexpected = [
        r for r in results if isinstance(r, Exception) and not isinstance(r, InvalidTransitionError)
    ]
    assert unexpected == []  # lost races are INVALID_TRANSITION, never a deadlock
    await recount_matches(db, batch.id)


async def test_two_concurrent_reprocessings_one_wins_the_other_waits(db: Database) -> None:
    await make_task_type(db, "resize", parameters_schema=RESIZE_SCHEMA)
    await make_task_type(db, "thumb")
    first = await make_batch(db, two_node_definition(ITEMS))

    async def reprocess() -> str:
        try:
            await make_batch(
                db,
                None,
                previous=batches.PreviousBatch(root_batch_id=first.id),
                finish_creation=False,
            )
        except batches.InvalidBatchError as exc:
            return exc.validation.errors[0].name
        return "created"

    outcomes = sorted(await asyncio.gather(reprocess(), reprocess()))
    assert outcomes == ["PREV_BATCH_STILL_CREATING", "created"]
    async with db.read_session() as s:
        current = list(
            await s.scalars(
                select(Batch).where(Batch.root_batch_id == first.id, Batch.is_superseded.is_(False))
            )
        )
    assert len(current) == 1
