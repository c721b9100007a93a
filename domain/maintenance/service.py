"""Periodic maintenance: the database is the truth about jobs, and this makes the
fleet converge to it whatever messages were lost.

Run every few seconds by every fleet worker process; a transaction-scoped
advisory lock lets exactly one of them work at a time (the others skip the tick).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from db.uow import UnitOfWork
from domain.batches.service import CREATE_CHUNK
from domain.jobs import execution
from domain.jobs import service as jobs
from domain.workers import service as workers
from domain.workers.rules import DEFAULT_TIMEOUT_SECONDS

TICK_LOCK_KEY = 0x62670003
QUEUED_DEADLINE = timedelta(seconds=60)
STALLED_CREATION = timedelta(seconds=60)
SLICE = 500


@dataclass(frozen=True, slots=True)
class Tick:
    lost_workers: int = 0
    requeued_jobs: int = 0
    redispatched_jobs: int = 0
    resumed_creations: int = 0
    dispatched_pending: int = 0


async def tick(
    uow: UnitOfWork,
    *,
    now: datetime,
    worker_timeout: timedelta = timedelta(seconds=DEFAULT_TIMEOUT_SECONDS),
    queued_deadline: timedelta = QUEUED_DEADLINE,
) -> Tick | None:
    """One round; None when another process holds the tick."""
    if not await uow.try_advisory_xact_lock(TICK_LOCK_KEY):
        return None
    lost = await uow.workers.lost_since(now - worker_timeout)
    requeued = 0
    for worker in lost:
        requeued += await workers.mark_lost(uow, worker)
    stale = await uow.jobs.stale_queued_fleet(now - queued_deadline, limit=SLICE)
    for job_id in stale:  # a duplicate message is harmless: claiming skips taken jobs
        uow.send_after_commit(execution.RUN, job_id)
    stalled = await uow.batches.stalled_creations(
        now - min(STALLED_CREATION, queued_deadline), limit=SLICE
    )
    for batch_id, cursor in stalled:
        uow.send_after_commit(CREATE_CHUNK, batch_id, cursor)
    dispatched = 0
    for batch_id in await uow.jobs.batches_with_pending(limit=SLICE):
        dispatched += await jobs.dispatch_pending(uow, batch_id=batch_id)
    return Tick(len(lost), requeued, len(stale), len(stalled), dispatched)
