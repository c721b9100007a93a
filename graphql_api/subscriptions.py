"""Subscriptions over graphql-transport-ws, fed by the LISTEN/NOTIFY event bus.

A subscriber listens first, then replays what it missed (``afterEventId``) from
the job events table, then takes live events, skipping ids already sent: no gap,
no duplicate. Payloads are read fresh for every event (never from the
connection's DataLoaders, which would cache stale rows)."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncGenerator
from datetime import datetime

import strawberry
from strawberry import relay

from db.enums import JobStatus
from db.events import JOB_EVENTS, METRICS, RESYNC, WORKERS, Notice
from db.models import JobEvent
from domain.auth.rules import require_authenticated
from domain.batches.service import get_visible as visible_batch
from domain.errors import DomainError, NotFoundError
from domain.jobs.service import get_visible as visible_job
from graphql_api.batches.types import BatchCounters, NodeMetrics
from graphql_api.comparisons.queries import compare
from graphql_api.comparisons.types import BatchComparison
from graphql_api.context import Info
from graphql_api.errors import top_level
from graphql_api.ids import parse_id
from graphql_api.workers.types import Worker

REPLAY_PAGE = 500
PROGRESS_EVERY = 0.25  # seconds: batchProgress is throttled
SEEN = 50_000


@strawberry.type(description="A job changed status (one job event).")
class JobStatusEvent:
    event_id: int
    job: relay.GlobalID
    batch: relay.GlobalID
    node: str
    from_status: JobStatus | None
    to_status: JobStatus
    attempt: int
    worker: str | None
    reason: str | None
    at: datetime

    @classmethod
    def of(cls, event: JobEvent, node: str) -> JobStatusEvent:
        return cls(
            event_id=event.id,
            job=relay.GlobalID("Job", str(event.job_id)),
            batch=relay.GlobalID("Batch", str(event.batch_id)),
            node=node,
            from_status=event.from_status,
            to_status=event.to_status,
            attempt=event.attempt,
            worker=event.worker,
            reason=event.reason,
            at=event.at,
        )


@strawberry.type(
    description="A batch's counters and node metrics, sent at most every 250 ms while they"
    " change (p50/p95 durations change when the background refresh recomputes them)."
)
class BatchProgress:
    batch: relay.GlobalID
    is_creation_done: bool
    counters: BatchCounters
    node_metrics: list[NodeMetrics] = strawberry.field(
        description="Per node (job name), in recipe order: as `Batch.nodeMetrics`."
    )


async def _authorize(
    info: Info, batch: strawberry.ID | None, job: strawberry.ID | None
) -> tuple[int | None, int | None]:
    if (batch is None) == (job is None):
        raise top_level(NotFoundError("Pass exactly one of batch or job"))
    async with info.context.unit_of_work() as uow:  # read-only: never committed
        try:
            if batch is not None:
                found_batch = await visible_batch(uow, parse_id(batch, "Batch"), info.context.actor)
                return found_batch.id, None
            assert job is not None
            found_job = await visible_job(uow, parse_id(job, "Job"), info.context.actor)
            return None, found_job.id
        except DomainError as exc:
            raise top_level(exc) from exc


async def _counters(info: Info, batch_id: int) -> BatchProgress:
    async with info.context.reads() as reads:
        row = await reads.batches.get(batch_id)
        [nodes] = await reads.batches.nodes([batch_id])
        [completed] = await reads.batches.completed_recipe_counts([batch_id])
    assert row is not None
    sums = {s.value.lower(): sum(getattr(n, s.value.lower()) for n in nodes) for s in JobStatus}
    return BatchProgress(
        batch=relay.GlobalID("Batch", str(batch_id)),
        is_creation_done=row.is_creation_done,
        counters=BatchCounters(
            jobs_total=sum(sums.values()),
            **sums,
            recipes_estimated=row.recipes_estimated,
            recipes_total=row.recipes_total,
            recipes_completed=completed,
        ),
        node_metrics=[NodeMetrics.from_model(n) for n in nodes],
    )


def _changes_batches(notice: Notice) -> bool:
    """A notice of changed jobs, or of recomputed metrics: both carry their batches."""
    return notice.channel in (JOB_EVENTS, METRICS)


def _concerns(notice: Notice, batch_id: int | None, job_id: int | None) -> bool:
    """Could this notice (one statement's events: their batches and id range) hold
    events for this subscriber? A job subscription checks by reading."""
    batches = notice.data.get("batches")
    if batch_id is not None:
        return batches is None or batch_id in batches
    return job_id is not None


def _touches_chain(notice: Notice, chain: frozenset[int]) -> bool:
    """Could this notice change the chain's comparison? Its batches, or a batch newer than
    all of them (a re-processing adds the chain's next batch with a higher id)."""
    batches = notice.data.get("batches")
    if batches is None:
        return True
    newest = max(chain)
    return any(b in chain or b > newest for b in batches)


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="Job status changes of one batch or one job. With afterEventId, what"
        " happened after that event is sent first."
    )
    async def job_status_changed(
        self,
        info: Info,
        batch: strawberry.ID | None = None,
        job: strawberry.ID | None = None,
        after_event_id: int | None = None,
    ) -> AsyncGenerator[JobStatusEvent, None]:
        batch_id, job_id = await _authorize(info, batch, job)
        seen: deque[int] = deque(maxlen=SEEN)
        seen_set: set[int] = set()
        last = after_event_id

        def fresh(event: JobEvent) -> bool:
            if event.id in seen_set:
                return False
            if len(seen) == seen.maxlen:
                seen_set.discard(seen[0])
            seen.append(event.id)
            seen_set.add(event.id)
            return True

        async def replay() -> list[JobStatusEvent]:
            nonlocal last
            found: list[JobStatusEvent] = []
            while True:
                async with info.context.reads() as reads:
                    rows = await reads.jobs.events_after(
                        batch_id=batch_id, job_id=job_id, after=last or 0, limit=REPLAY_PAGE
                    )
                found += [JobStatusEvent.of(e, n) for e, n in rows if fresh(e)]
                if rows:
                    last = max(last or 0, rows[-1][0].id)
                if len(rows) < REPLAY_PAGE:
                    return found

        async with info.context.events.subscribe() as queue:
            if after_event_id is not None:
                for event in await replay():
                    yield event
            else:  # from now on: what was there before subscribing is history
                async with info.context.reads() as reads:
                    last = await reads.jobs.last_event_id()
            while True:
                notice: Notice = await queue.get()
                if notice is RESYNC:
                    for event in await replay():
                        yield event
                    continue
                if notice.channel != JOB_EVENTS or not _concerns(notice, batch_id, job_id):
                    continue
                if last is not None and notice.data.get("max", 0) <= last:
                    continue
                for event in await replay():
                    yield event

    @strawberry.subscription(
        description="A batch's counters and node metrics as its jobs move (throttled): a"
        " snapshot first, then a fresh one after every change, so the last one sent is"
        " always the batch's current state."
    )
    async def batch_progress(
        self, info: Info, batch: strawberry.ID
    ) -> AsyncGenerator[BatchProgress, None]:
        batch_id, _ = await _authorize(info, batch, None)
        assert batch_id is not None
        async with info.context.events.subscribe() as queue:
            yield await _counters(info, batch_id)
            while True:
                notice = await queue.get()
                if notice is not RESYNC and (
                    not _changes_batches(notice) or not _concerns(notice, batch_id, None)
                ):
                    continue
                await asyncio.sleep(PROGRESS_EVERY)  # let a burst settle into one update
                while not queue.empty():
                    queue.get_nowait()
                yield await _counters(info, batch_id)

    @strawberry.subscription(
        description="batchComparison, live: the comparison now, then again (at most every"
        " 250 ms) whenever a batch of the chain changes — its jobs, its recomputed p50/p95,"
        " a new batch re-processing the chain. An empty comparison (no chain root you may"
        " read) is sent once, and the subscription ends."
    )
    async def batch_comparison_changed(
        self,
        info: Info,
        root_batch_id: strawberry.ID,
        threshold: float | None = None,
        min_seconds: float | None = None,
    ) -> AsyncGenerator[BatchComparison, None]:
        async with info.context.events.subscribe() as queue:
            found = await compare(info, root_batch_id, threshold, min_seconds)
            yield BatchComparison.of(found)
            if not found.batches:
                return
            while True:
                notice = await queue.get()
                if notice is not RESYNC and not (
                    _changes_batches(notice) and _touches_chain(notice, found.batch_ids)
                ):
                    continue
                await asyncio.sleep(PROGRESS_EVERY)  # let a burst settle into one update
                while not queue.empty():
                    queue.get_nowait()
                again = await compare(info, root_batch_id, threshold, min_seconds)
                if again.comparison != found.comparison or again.batch_ids != found.batch_ids:
                    yield BatchComparison.of(again)
                found = again

    @strawberry.subscription(description="Workers connecting, disconnecting, lost or (dis)abled.")
    async def worker_status_changed(self, info: Info) -> AsyncGenerator[Worker, None]:
        try:
            require_authenticated(info.context.actor)
        except DomainError as exc:
            raise top_level(exc) from exc
        async with info.context.events.subscribe() as queue:
            while True:
                notice = await queue.get()
                if notice.channel != WORKERS:
                    continue
                async with info.context.reads() as reads:
                    row = await reads.workers.get(notice.data["id"])
                if row is not None:
                    yield Worker.from_model(row)
