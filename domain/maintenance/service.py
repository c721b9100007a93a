"""Periodic maintenance: the database is the truth about jobs, and these tasks make the
fleet converge to it whatever messages or processes were lost.

Each is an entry of the periodic registry (domain/periodic/service.py): one runner
at a time across every process, last and next run visible in the API.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from db.repositories import counters
from db.uow import UnitOfWork
from domain import plural
from domain.batches.service import CREATE_CHUNK
from domain.jobs import execution, moves
from domain.periodic.service import periodic
from domain.workers import service as workers
from domain.workers.rules import DEFAULT_TIMEOUT_SECONDS

SLICE = 500
# A RUNNING job past its task type's time limit by this much is taken back even if
# its worker still heartbeats (the worker is stuck, or lost the job's outcome).
OVERDUE_GRACE = timedelta(seconds=30)


# How long a QUEUED job (or a batch creation) may wait for its message before it is
# sent again (entry points set it from BATCHGRAPH_REQUEUE_AFTER_SECONDS).
REQUEUE_AFTER = timedelta(seconds=60)


def set_requeue_after(seconds: float) -> None:
    global REQUEUE_AFTER
    REQUEUE_AFTER = timedelta(seconds=seconds)


@periodic(
    "counters.fold",
    seconds=0.5,
    description="Fold counter deltas into batch_node rows (readers add the unfolded rest)"
    " and recompute p50/p95 durations of the nodes whose completed jobs changed.",
)
async def fold_counters(uow: UnitOfWork, now: datetime) -> str | None:
    folded = await counters.fold(uow.session)
    if not folded.nodes:
        return None
    return f"{folded.nodes} nodes, {folded.recomputed} with new percentiles"


@periodic(
    "workers.lost",
    seconds=5,
    description="Workers silent past their timeout are lost; their running jobs go back.",
)
async def lose_silent_workers(uow: UnitOfWork, now: datetime) -> str | None:
    cutoff = now - timedelta(seconds=DEFAULT_TIMEOUT_SECONDS)
    # Nobody can heartbeat while the database is away, so after it restarts every worker
    # looks silent. Judge none until the database has been up for a whole timeout: the
    # first tick after an outage longer than the timeout would otherwise take back every
    # running job — whose outcomes the live workers hold and are about to write
    # (jobs/runtime.py keeps them) — and re-run it, or fail it with WORKER_LOST on its
    # last attempt although it succeeded.
    if await uow.workers.database_started_at() > cutoff:
        return None
    lost = await uow.workers.lost_since(cutoff)
    requeued = 0
    for worker in lost:
        requeued += await workers.mark_lost(uow, worker)
    return (
        f"{plural.count(len(lost), 'worker')} lost, {plural.count(requeued, 'job')} back"
        if lost
        else None
    )


@periodic(
    "jobs.overdue",
    seconds=10,
    description="RUNNING jobs past their time limit (plus a grace) go back, even on a live worker.",
)
async def take_back_overdue(uow: UnitOfWork, now: datetime) -> str | None:
    taken = await execution.lose_runs(
        uow,
        join="JOIN task_type_revision r ON r.id = j.task_type_revision_id",
        where="r.timeout_seconds IS NOT NULL"
        " AND j.started_at < CAST(:now AS timestamptz)"
        " - make_interval(secs => r.timeout_seconds + :grace)",
        params={"now": now, "grace": OVERDUE_GRACE.total_seconds()},
        why="ran past its time limit; its worker did not report",
        code="TIMEOUT",
        category="TIMEOUT",
    )
    return f"{taken} overdue jobs taken back" if taken else None


@periodic(
    "jobs.resend",
    seconds=10,
    description="QUEUED fleet jobs nobody picked up, and stalled batch creations, are sent again.",
)
async def resend_lost_messages(uow: UnitOfWork, now: datetime) -> str | None:
    stale = await uow.jobs.stale_queued_fleet(now - REQUEUE_AFTER, limit=SLICE)
    for group in moves.groups(stale):  # a duplicate is harmless: claims skip taken jobs
        uow.send_after_commit(moves.RUN_ACTOR, *group)
    stalled = await uow.batches.stalled_creations(
        now - min(REQUEUE_AFTER, timedelta(seconds=60)), limit=SLICE
    )
    for batch_id, cursor in stalled:
        uow.send_after_commit(CREATE_CHUNK, batch_id, cursor)
    if not stale and not stalled:
        return None
    return (
        f"{plural.count(len(stale), 'job')} and {plural.count(len(stalled), 'creation')} sent again"
    )


@periodic(
    "jobs.dispatch",
    seconds=10,
    description="Batches with ready (PENDING) jobs get them dispatched (a safety net).",
)
async def dispatch_ready(uow: UnitOfWork, now: datetime) -> str | None:
    dispatched = 0
    for batch_id in await uow.jobs.batches_with_pending(limit=SLICE):
        applied = await moves.dispatch(uow, batch_id=batch_id)
        dispatched += len(applied.moved)
    return f"{plural.count(dispatched, 'job')} dispatched" if dispatched else None
