"""Job use cases. The transition service is the only code that assigns ``job.status``.

Every transition, in the same transaction: the job's fields, the batch node's
counters (atomic increments), durations and recipe completion, one job event,
and the consequences for the job's dependents.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from db.enums import JobStatus
from db.models import Job
from db.uow import UnitOfWork
from domain.auth.rules import Actor, require_writer
from domain.errors import InvalidTransitionError, NotFoundError
from domain.jobs.rules import ACTIVE, FINAL, Initiator, check_transition, seconds_between
from domain.workspaces.service import can_read


async def transition(
    uow: UnitOfWork,
    job: Job,
    target: JobStatus,
    *,
    initiator: Initiator,
    reason: str | None = None,
    worker: str | None = None,
) -> None:
    """Move one (locked) job to ``target`` and record it; then settle its dependents."""
    await _move(uow, job, target, initiator=initiator, reason=reason, worker=worker)
    unblocked = 0
    if target is JobStatus.COMPLETED:
        unblocked = await _unblock_dependents(uow, [job.id])
    elif target in (JobStatus.FAILED, JobStatus.CANCELED):
        await _cancel_dependents(uow, [job], why=f"dependency {job.node} {target.lower()}")
    # Dispatch when jobs became ready, or when capacity freed up in a batch that caps
    # it (elsewhere nothing PENDING can be waiting: creation, unblocking and retries
    # dispatch as they go).
    if unblocked or target is JobStatus.PENDING:
        await dispatch_pending(uow, batch_id=job.batch_id)
    elif target in FINAL:
        batch = await uow.batches.get(job.batch_id)
        if batch is not None and batch.max_parallel_jobs is not None:
            await dispatch_pending(uow, batch_id=job.batch_id)


async def dispatch_pending(uow: UnitOfWork, *, batch_id: int) -> int:
    """PENDING → QUEUED for what the batch may run now (``maxParallelJobs`` counts
    QUEUED and RUNNING jobs); fleet jobs get a ``jobs.run`` message after commit,
    jobs of ``external`` task types wait for pull workers. Returns how many moved."""
    batch = await uow.batches.get(batch_id)
    if batch is None:
        return 0
    room = DISPATCH_SLICE
    if batch.max_parallel_jobs is not None:
        [nodes] = await uow.batches.nodes([batch_id])
        room = min(room, batch.max_parallel_jobs - sum(n.queued + n.running for n in nodes))
    if room <= 0:
        return 0
    rule = check_transition(JobStatus.PENDING, JobStatus.QUEUED, Initiator.SYSTEM)
    moved = await uow.jobs.queue_pending(batch_id, limit=room)
    if not moved:
        return 0
    per_node: dict[str, int] = {}
    for job in moved:
        per_node[job.node] = per_node.get(job.node, 0) + 1
    for node, n in per_node.items():
        await uow.batches.add_counts(batch_id, node, {JobStatus.PENDING: -n, JobStatus.QUEUED: n})
    await uow.jobs.add_events(
        [
            {
                "job_id": j.id,
                "batch_id": batch_id,
                "from_status": JobStatus.PENDING,
                "to_status": JobStatus.QUEUED,
                "attempt": j.attempt,
                "reason": rule.why,
            }
            for j in moved
        ]
    )
    fleet = await uow.jobs.fleet_job_ids([j.id for j in moved])
    for job_id in fleet:
        uow.send_after_commit(RUN_ACTOR, job_id)
    return len(moved)


async def _move(
    uow: UnitOfWork,
    job: Job,
    target: JobStatus,
    *,
    initiator: Initiator,
    reason: str | None,
    worker: str | None = None,
    by_dependency: bool = False,
) -> None:
    rule = check_transition(job.status, target, initiator)
    previous = job.status
    now = datetime.now(UTC)
    if rule.new_attempt:
        job.attempt += 1
        job.worker = None
        job.started_at = None
        job.completed_at = None
        job.result = None
        job.error_code = job.error_message = job.error_category = None
    job.status = target
    job.canceled_by_dependency = by_dependency
    job.last_modified_at = now
    if target is JobStatus.QUEUED:
        job.queued_at = now
    elif target is JobStatus.RUNNING:
        job.started_at = now
        job.worker = worker
    elif target in FINAL:
        job.completed_at = now
    await uow.jobs.flush()
    if target is JobStatus.COMPLETED:  # counters and durations in one statement
        await uow.batches.add_counts(
            job.batch_id,
            job.node,
            {previous: -1, target: +1},
            run=seconds_between(job.started_at, job.completed_at),
            job=seconds_between(job.created_at, job.completed_at),
        )
        # Never the batch row: creation and cancellation lock it first, and a
        # transition writing it would deadlock against them.
        await uow.batches.complete_one_job(job.recipe_id)
    else:
        await uow.batches.add_counts(job.batch_id, job.node, {previous: -1, target: +1})
    await uow.jobs.add_events(
        [
            {
                "job_id": job.id,
                "batch_id": job.batch_id,
                "from_status": previous,
                "to_status": target,
                "attempt": job.attempt,
                "worker": worker or job.worker,
                "reason": reason or rule.why,
            }
        ]
    )


RUN_ACTOR = "jobs.run"
DISPATCH_SLICE = 1_000


async def _unblock_dependents(uow: UnitOfWork, job_ids: Sequence[int]) -> int:
    """BLOCKED → PENDING for dependents whose every dependency has completed."""
    dependents = await uow.jobs.lock(await uow.jobs.dependent_ids(job_ids))
    blocked = [j for j in dependents if j.status is JobStatus.BLOCKED]
    if not blocked:
        return 0
    unfinished = await uow.jobs.unfinished_dependency_counts([j.id for j in blocked])
    moved = 0
    for job in blocked:
        if unfinished[job.id] == 0:
            await _move(uow, job, JobStatus.PENDING, initiator=Initiator.SYSTEM, reason=None)
            moved += 1
    return moved


async def _cancel_dependents(uow: UnitOfWork, jobs: Sequence[Job], *, why: str) -> None:
    """Cancel, transitively, every unfinished job downstream of a failed or canceled one."""
    frontier = [j.id for j in jobs]
    while frontier:
        dependents = await uow.jobs.lock(await uow.jobs.dependent_ids(frontier))
        frontier = []
        for job in dependents:
            if job.status in ACTIVE:
                await _move(
                    uow,
                    job,
                    JobStatus.CANCELED,
                    initiator=Initiator.SYSTEM,
                    reason=why,
                    by_dependency=True,
                )
                frontier.append(job.id)


async def _revive_dependents(uow: UnitOfWork, job_ids: Sequence[int]) -> None:
    """After a retry: jobs canceled only because of it wait (BLOCKED) for it again —
    unless another of their dependencies is still failed or canceled, in which case
    they would wait forever, so they stay canceled."""
    frontier = list(job_ids)
    while frontier:
        dependents = await uow.jobs.lock(await uow.jobs.dependent_ids(frontier))
        frontier = []
        dead = await uow.jobs.dead_dependency_counts([j.id for j in dependents])
        for job in dependents:
            if job.status is JobStatus.CANCELED and job.canceled_by_dependency and not dead[job.id]:
                await _move(
                    uow,
                    job,
                    JobStatus.BLOCKED,
                    initiator=Initiator.SYSTEM,
                    reason="revived: its dependency was retried",
                )
                frontier.append(job.id)


async def get_visible(uow: UnitOfWork, job_id: int, actor: Actor | None, *, lock: bool) -> Job:
    job = await uow.jobs.get(job_id, for_update=lock)
    if job is not None:
        [workspace] = await uow.workspaces.get_many([job.workspace_id])
        if workspace is not None and can_read(workspace, actor):
            return job
    raise NotFoundError(f"No job with id {job_id}")


async def cancel_job(
    uow: UnitOfWork, *, job_id: int, reason: str | None, actor: Actor | None
) -> Job:
    """Cancel one unfinished job (and, with it, what depends on it)."""
    who = require_writer(actor)
    job = await get_visible(uow, job_id, actor, lock=True)
    await transition(
        uow,
        job,
        JobStatus.CANCELED,
        initiator=Initiator.USER,
        reason=reason or f"canceled by {who.owner}",
    )
    return job


async def retry_job(uow: UnitOfWork, *, job_id: int, actor: Actor | None) -> Job:
    """Re-open a FAILED or CANCELED job as a new attempt (BLOCKED if it must wait)."""
    who = require_writer(actor)
    job = await get_visible(uow, job_id, actor, lock=True)
    if (await uow.jobs.dead_dependency_counts([job.id]))[job.id]:
        raise InvalidTransitionError(
            f"Job {job_id} depends on a failed or canceled job: retry that one first"
        )
    unfinished = await uow.jobs.unfinished_dependency_counts([job.id])
    target = JobStatus.BLOCKED if unfinished[job.id] else JobStatus.PENDING
    await _move(uow, job, target, initiator=Initiator.USER, reason=f"retried by {who.owner}")
    await _revive_dependents(uow, [job.id])
    if await dispatch_pending(uow, batch_id=job.batch_id):
        await uow.jobs.refresh(job)  # dispatch moves rows in bulk, behind the ORM's back
    return job


async def cancel_active(uow: UnitOfWork, job_ids: Sequence[int], *, reason: str) -> int:
    """Cancel these jobs where still unfinished (locked in id order). Returns how many."""
    canceled = 0
    for job in await uow.jobs.lock(job_ids):
        if job.status in ACTIVE:
            await _move(uow, job, JobStatus.CANCELED, initiator=Initiator.USER, reason=reason)
            canceled += 1
    return canceled


async def complete(uow: UnitOfWork, job: Job, *, result: dict[str, object], worker: str) -> None:
    """Record a (locked) job's result and complete it.

    Not yet validated against the result schema: that arrives with the worker fleet.
    """
    job.result = result
    await transition(uow, job, JobStatus.COMPLETED, initiator=Initiator.WORKER, worker=worker)


async def fail(
    uow: UnitOfWork,
    job: Job,
    *,
    code: str,
    message: str,
    category: str,
    worker: str,
    initiator: Initiator = Initiator.WORKER,
) -> None:
    """Record why a (locked) job failed and fail it (its dependents are canceled)."""
    job.error_code, job.error_message, job.error_category = code, message, category
    await transition(uow, job, JobStatus.FAILED, initiator=initiator, worker=worker)
