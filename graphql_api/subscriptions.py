"""Subscriptions over graphql-transport-ws, fed by the LISTEN/NOTIFY event bus.

``jobStatusChanged`` goes through the process's job event hub (graphql_api.fanout):
each event is read once and rendered once per distinct selection; a subscriber only
receives the rendered text (the schema's executor puts it into the frame as is, see
``RenderedEventExecutor``). What it missed (``afterEventId``) is replayed from the job
events table first, up to the hub's cursor: no gap, no duplicate.
``batchProgress`` and ``workerStatusChanged`` read fresh rows for every notice."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncGenerator, Callable
from datetime import datetime
from typing import Any

import orjson
import strawberry
from graphql import ExecutionResult
from graphql.execution.values import VariableValues
from starlette.websockets import WebSocket
from strawberry import relay
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from db.enums import JobStatus
from db.events import JOB_EVENTS, METRICS, RESYNC, WORKERS, Notice
from db.models import JobEvent
from db.repositories.job import EventRow
from domain.auth.rules import require_authenticated
from domain.batches.service import get_visible as visible_batch
from domain.errors import DomainError, NotFoundError, UnauthenticatedError
from domain.jobs.service import get_visible as visible_job
from graphql_api.batches.types import BatchCounters, NodeMetrics
from graphql_api.comparisons.queries import compare
from graphql_api.comparisons.types import BatchComparison
from graphql_api.compiled.selection import Tree
from graphql_api.context import Info
from graphql_api.errors import top_level
from graphql_api.fanout import JobEventHub, Lagged, Rendered, Revoked, Subscriber
from graphql_api.ids import parse_id
from graphql_api.jsonenc import RawJSON
from graphql_api.websocket import CURRENT_OPERATION, SocketClosed, close_revoked, sender
from graphql_api.workers.types import Worker

PROGRESS_EVERY = 0.25  # seconds: batchProgress is throttled


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


def _gid(kind: str, pk: int) -> str:
    return base64.b64encode(f"{kind}:{pk}".encode()).decode()


# How each JobStatusEvent field is written, as strawberry would serialize it.
_EVENT_FIELDS: dict[str, Callable[[EventRow], Any]] = {
    "__typename": lambda e: "JobStatusEvent",
    "eventId": lambda e: e.id,
    "job": lambda e: _gid("Job", e.job_id),
    "batch": lambda e: _gid("Batch", e.batch_id),
    "node": lambda e: e.node,
    "fromStatus": lambda e: e.from_status.value if e.from_status is not None else None,
    "toStatus": lambda e: e.to_status.value,
    "attempt": lambda e: e.attempt,
    "worker": lambda e: e.worker,
    "reason": lambda e: e.reason,
    "at": lambda e: e.at.isoformat(),
}


def event_renderer(info: Info) -> tuple[tuple[Any, ...], Callable[[EventRow], str]]:
    """(what distinguishes this selection, a function writing an event as its JSON)."""
    raw: Any = info.variable_values
    variables = raw if isinstance(raw, VariableValues) else VariableValues({}, dict(raw or {}))
    core: Any = info._raw_info  # graphql-core's info: the nodes and fragments
    tree = Tree(info.schema._schema, core.fragments, variables)
    fields = tree.collect(
        "JobStatusEvent", [n.selection_set for n in core.field_nodes if n.selection_set]
    )
    plan = tuple((f.key, f.name) for f in fields)
    writers = [(key, _EVENT_FIELDS[name]) for key, name in plan]

    def render(event: EventRow) -> str:
        return orjson.dumps({key: write(event) for key, write in writers}).decode()

    return plan, render


class RenderedEventExecutor(StrawberryGraphQLCoreExecutionContext):
    """Subscription events that arrive rendered (graphql_api.fanout) are not executed
    again per subscriber: their text becomes the result as is."""

    def build_per_event_executor(self, payload: Any) -> Any:
        if isinstance(payload, Rendered):
            return _RenderedEvent(payload)
        return super().build_per_event_executor(payload)


class _RenderedEvent:
    __slots__ = ("payload",)

    def __init__(self, payload: Rendered) -> None:
        self.payload = payload

    def execute_operation(self, serially: bool | None = None) -> ExecutionResult:
        return ExecutionResult(data={self.payload.key: RawJSON(self.payload.text)}, errors=None)


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


def _touches(notice: Notice, batch_id: int) -> bool:
    batches = notice.data.get("batches")
    return batches is None or batch_id in batches  # None: a statement touched very many


def _touches_chain(notice: Notice, chain: frozenset[int]) -> bool:
    """Could this notice change the chain's comparison? Its batches, or a batch newer than
    all of them (a re-processing adds the chain's next batch with a higher id)."""
    batches = notice.data.get("batches")
    if batches is None:
        return True
    newest = max(chain)
    return any(b in chain or b > newest for b in batches)


class _TokenRevoked(Exception):
    """The subscriber's token no longer holds: end the stream."""


async def _replayed(
    hub: JobEventHub, sub: Subscriber, after: int, upto: int
) -> AsyncGenerator[Rendered, None]:
    async for item in hub.replay(sub, after, upto):
        if isinstance(item, Revoked):
            raise _TokenRevoked
        yield item


async def _job_events(
    hub: JobEventHub, sub: Subscriber, after_event_id: int | None, *, direct: bool
) -> AsyncGenerator[Rendered, None]:
    """A subscriber's events in id order: what it missed (from the table), then live ones
    (from the hub; once caught up, written by the hub itself when ``direct``)."""
    start = await sub.started
    last = start
    if after_event_id is not None:
        last = after_event_id
        async for item in _replayed(hub, sub, after_event_id, start):
            last = item.event_id
            yield item
        last = max(last, start)
    while True:
        if direct and not sub.direct and sub.queue.empty():
            sub.direct = True  # from now on the hub writes this subscriber's frames
        found = await sub.queue.get()
        if isinstance(found, Revoked):
            raise _TokenRevoked
        if isinstance(found, Lagged):
            async for item in _replayed(hub, sub, last, found.upto):
                last = item.event_id
                yield item
            last = max(last, found.upto)
        elif found.event_id > last:
            last = found.event_id
            yield found


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
        hub = info.context.hub
        assert hub is not None, "the app's lifespan starts the job event hub"
        selection, render = event_renderer(info)
        operation = CURRENT_OPERATION.get(None)
        socket = info.context.request
        websocket = socket if isinstance(socket, WebSocket) else None
        write = sender(websocket) if operation is not None and websocket is not None else None
        key = str(info.path.key)
        head = (
            f'{{"id":{orjson.dumps(operation).decode()},"type":"next","payload":{{"data":{{"{key}":'
        )
        async with hub.subscribe(
            batch_id=batch_id,
            job_id=job_id,
            actor=info.context.actor,
            selection=selection,
            render=render,
            key=key,
            write=write,
            head=head,
        ) as sub:
            events = _job_events(hub, sub, after_event_id, direct=write is not None)
            try:
                async with contextlib.aclosing(events):
                    async for item in events:
                        if write is not None:
                            await write(head + item.text + "}}}")
                        else:
                            yield item  # type: ignore[misc]  # rendered already (fanout)
            except _TokenRevoked:
                if websocket is not None:  # as for every subscription (websocket.py)
                    await close_revoked(websocket)
                    return
                raise top_level(UnauthenticatedError("The token was disabled or expired")) from None
            except SocketClosed:  # closed meanwhile (revoked, or the client left)
                return

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
                    not _changes_batches(notice) or not _touches(notice, batch_id)
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
