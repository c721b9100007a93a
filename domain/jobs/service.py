"""Job use cases, all on the one path for state changes (domain/jobs/moves.py)."""

from __future__ import annotations

from db.enums import JobStatus
from db.models import Job
from db.repositories.moves import BulkChange, Selection
from db.uow import UnitOfWork
from domain.auth.rules import Actor, require_writer
from domain.errors import InvalidTransitionError, NotFoundError, raise_if_invalid
from domain.jobs import moves
from domain.jobs.moves import Applied, Move, status_in
from domain.jobs.rules import ACTIVE, Initiator, check_reason
from domain.workspaces.service import can_read

DEAD = (JobStatus.FAILED, JobStatus.CANCELED)


async def get_visible(uow: UnitOfWork, job_id: int, actor: Actor | None) -> Job:
    job = await uow.jobs.get(job_id)
    if job is not None:
        [workspace] = await uow.workspaces.get_many([job.workspace_id])
        if workspace is not None and can_read(workspace, actor):
            return job
    raise NotFoundError(f"No job with id {job_id}")


async def reread(uow: UnitOfWork, job_id: int) -> Job:
    """The job as the moves left it (they write behind the ORM's back)."""
    job = await uow.jobs.get(job_id, fresh=True)
    if job is None:  # pragma: no cover - moves never delete jobs
        raise NotFoundError(f"No job with id {job_id}")
    return job


async def cancel_job(
    uow: UnitOfWork, *, job_id: int, reason: str | None, actor: Actor | None
) -> Job:
    """Cancel one unfinished job (and, with it, what depends on it)."""
    who = require_writer(actor)
    raise_if_invalid("Invalid cancel", check_reason(reason))
    await get_visible(uow, job_id, actor)
    await moves.apply(
        uow,
        [
            Move(
                job_id,
                JobStatus.CANCELED,
                Initiator.USER,
                reason=reason or f"canceled by {who.owner}",
            )
        ],
    )
    return await reread(uow, job_id)


async def retry_job(uow: UnitOfWork, *, job_id: int, actor: Actor | None) -> Job:
    """Re-open a FAILED or CANCELED job as a new attempt (BLOCKED if it must wait)."""
    who = require_writer(actor)
    await get_visible(uow, job_id, actor)
    states = await uow.moves.lock([job_id])
    if not states:  # pragma: no cover - seen just above
        raise NotFoundError(f"No job with id {job_id}")
    dependencies = await uow.jobs.dependency_states(job_id)
    if any(s in DEAD for s in dependencies):
        raise InvalidTransitionError(
            f"Job {job_id} depends on a failed or canceled job: retry that one first"
        )
    waits = any(s is not JobStatus.COMPLETED for s in dependencies)
    target = JobStatus.BLOCKED if waits else JobStatus.PENDING
    applied = await moves.apply(
        uow,
        [Move(job_id, target, Initiator.USER, reason=f"retried by {who.owner}")],
        states=states,
    )
    await revive_downstream(uow, [m.id for m in applied.moved])
    return await reread(uow, job_id)


async def revive_downstream(uow: UnitOfWork, retried: list[int]) -> Applied:
    """After a retry: jobs canceled only because of the retried ones wait (BLOCKED)
    for them again — unless another of their dependencies is still failed or
    canceled, in which case they would wait forever, so they stay canceled."""
    followed = Applied()
    frontier = retried
    while frontier:
        selection = Selection(
            where="j.status = 'CANCELED' AND j.canceled_by_dependency"
            " AND j.id IN (SELECT job_id FROM job_dependency"
            "  WHERE depends_on_id = ANY(CAST(:ids AS bigint[])))"
            " AND NOT EXISTS (SELECT 1 FROM job_dependency x JOIN job y ON y.id = x.depends_on_id"
            "  WHERE x.job_id = j.id AND " + status_in(DEAD).replace("j.status", "y.status") + ")",
            params={"ids": frontier},
        )
        change = BulkChange(
            JobStatus.BLOCKED, reason="revived: its dependency was retried", new_attempt=True
        )
        step = await moves.apply_selected(
            uow,
            selection,
            change,
            initiator=Initiator.SYSTEM,
            from_statuses=[JobStatus.CANCELED],
            settle_after=False,
        )
        followed.add(step)
        frontier = [m.id for m in step.moved]
    return followed


async def cancel_in_batch(uow: UnitOfWork, *, batch_id: int, reason: str) -> int:
    """Cancel every unfinished job of a batch: one statement, whatever their number."""
    selection = Selection(
        where="j.batch_id = :batch AND " + status_in(ACTIVE), params={"batch": batch_id}
    )
    applied = await moves.apply_selected(
        uow,
        selection,
        BulkChange(JobStatus.CANCELED, reason=reason),
        initiator=Initiator.USER,
        from_statuses=ACTIVE,
        # Every job of the batch is final now: no dependent to settle, nothing to run.
        settle_after=False,
    )
    return len(applied.moved)


async def retry_in_batch(
    uow: UnitOfWork, *, batch_id: int, statuses: tuple[JobStatus, ...], who: str
) -> int:
    """Re-open the batch's jobs in ``statuses`` (FAILED, and CANCELED ones that were not
    canceled by a dependency) as new attempts, level by level of the recipe: PENDING
    when every dependency completed, BLOCKED while some still run; then revive what
    they had canceled, and dispatch. Statements grow with the recipe's depth, never
    with the number of jobs."""
    retried = Applied()
    reason = f"retried by {who}"
    wanted = status_in(statuses) + " AND NOT (j.status = 'CANCELED' AND j.canceled_by_dependency)"
    no_dead = (
        "NOT EXISTS (SELECT 1 FROM job_dependency x JOIN job y ON y.id = x.depends_on_id"
        " WHERE x.job_id = j.id AND " + status_in(DEAD).replace("j.status", "y.status") + ")"
    )
    unfinished = (
        "EXISTS (SELECT 1 FROM job_dependency x JOIN job y ON y.id = x.depends_on_id"
        " WHERE x.job_id = j.id AND y.status <> 'COMPLETED')"
    )
    while True:
        level = Applied()
        for target, condition in (
            (JobStatus.PENDING, "NOT " + unfinished),
            (JobStatus.BLOCKED, unfinished + " AND " + no_dead),
        ):
            selection = Selection(
                where=f"j.batch_id = :batch AND {wanted} AND {condition}",
                params={"batch": batch_id},
            )
            level.add(
                await moves.apply_selected(
                    uow,
                    selection,
                    BulkChange(target, reason=reason, new_attempt=True),
                    initiator=Initiator.USER,
                    from_statuses=statuses,
                    settle_after=False,
                )
            )
        if not level.moved:
            break
        retried.add(level)
    await revive_downstream(uow, [m.id for m in retried.moved])
    await moves.dispatch(uow, batch_id=batch_id)
    return len(retried.moved)
