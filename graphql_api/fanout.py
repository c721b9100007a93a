"""Job events to subscribers, once per process: each event row is read once, rendered
once per distinct selection, and handed to every subscriber of that selection; what is
left per subscriber is authorization and the frame write.

Order and completeness. Event ids come from a sequence at insert time, but transactions
commit in another order. The hub therefore delivers in id order and only up to the
*horizon* (``job_event_horizon()``, alembic 0006): the largest id below which no event
can still appear. So every subscriber sees events in increasing id order, and "after
event N" names the same set of events on any process at any time: a client resuming
with ``afterEventId`` gets exactly what it had not seen — no gap, no duplicate — even
when an event with a smaller id committed after a larger one (the old replay window).

A subscriber registers, and the hub activates it at the start of its next cycle with
the cursor it has delivered up to (``start``): events up to ``start`` come from the
table (replay, when ``afterEventId`` is given), later ones from the hub. A subscriber
that falls 10,000 events behind is told to re-read from the table instead (``Lagged``).

Over graphql-transport-ws, once its replay is sent, a subscriber goes *direct*: the hub
writes the ``next`` frame itself (the rendered text between a per-subscriber head and
tail), with no task switch, queue or executor per subscriber; until then events wait in
its queue, so the order holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from db.events import JOB_EVENTS, RESYNC, Notice
from db.repositories.job import EventRow, JobRepository
from db.session import Database
from domain.auth.rules import Actor

log = logging.getLogger(__name__)

QUEUE_LIMIT = 10_000
PAGE = 5_000
IDLE_POLL_SECONDS = 1.0  # with subscribers, look even when no notification came
WAIT_STEPS = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1)  # for writers still in flight
SLOW_SECONDS = 0.1  # a delivery cycle longer than this is logged

_HUBS: weakref.WeakSet[JobEventHub] = weakref.WeakSet()


def forget_events() -> None:
    """For a database whose event ids restart (tests): every hub starts over."""
    for hub in list(_HUBS):
        hub.reset = True


@dataclass(frozen=True, slots=True)
class Rendered:
    """One event as one subscriber's selection renders it (JSON text of the root field)."""

    key: str  # the root field's response key
    text: str
    event_id: int


@dataclass(frozen=True, slots=True)
class Lagged:
    """Too far behind: re-read the table up to ``upto``."""

    upto: int


@dataclass(frozen=True, slots=True)
class Revoked:
    """The subscriber's token no longer holds."""


Renderer = Callable[[EventRow], str]


@dataclass(eq=False)
class Subscriber:
    batch_id: int | None
    job_id: int | None
    actor: Actor | None
    selection: tuple[Any, ...]  # what distinguishes renderings
    render: Renderer
    key: str
    queue: asyncio.Queue[Rendered | Lagged | Revoked] = field(
        default_factory=lambda: asyncio.Queue(QUEUE_LIMIT)
    )
    started: asyncio.Future[int] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    skip_upto: int = 0
    # Direct delivery: the whole frame is ``head + rendered + "}}}"`` written by ``write``.
    write: Callable[[str], Awaitable[None]] | None = None
    head: str = ""
    direct: bool = False
    closed: bool = False

    def sees(self, event: EventRow) -> bool:
        return self.actor is not None or event.public


class JobEventHub:
    def __init__(
        self,
        db: Database,
        *,
        token_valid: Callable[[Actor], Awaitable[bool]] | None = None,
    ) -> None:
        self._db = db
        self._token_valid = token_valid  # whether an actor's token holds (cached by the caller)
        self._by_batch: dict[int, set[Subscriber]] = {}
        self._by_job: dict[int, set[Subscriber]] = {}
        self._pending: list[Subscriber] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._delivered: int | None = None  # the hub's cursor: ids up to here are handled
        self._announced = 0  # the largest id notifications told of
        self.reset = False
        self.renders = 0  # renderings made (tests: once per event and distinct selection)
        _HUBS.add(self)

    # --- feeding ---------------------------------------------------------------------

    def notice(self, notice: Notice) -> None:
        """An event bus callback (synchronous, on the listener)."""
        if notice is RESYNC:
            self._wake.set()
        elif notice.channel == JOB_EVENTS:
            self._announced = max(self._announced, int(notice.data.get("max") or 0))
            self._wake.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="job-event-hub")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    @contextlib.asynccontextmanager
    async def subscribe(
        self,
        *,
        batch_id: int | None,
        job_id: int | None,
        actor: Actor | None,
        selection: tuple[Any, ...],
        render: Renderer,
        key: str,
        write: Callable[[str], Awaitable[None]] | None = None,
        head: str = "",
    ) -> AsyncIterator[Subscriber]:
        sub = Subscriber(batch_id, job_id, actor, selection, render, key, write=write, head=head)
        self._pending.append(sub)
        self._wake.set()
        try:
            yield sub
        finally:
            sub.closed = True
            with contextlib.suppress(ValueError):
                self._pending.remove(sub)
            for index, value in ((self._by_batch, batch_id), (self._by_job, job_id)):
                if value is not None and value in index:
                    index[value].discard(sub)
                    if not index[value]:
                        del index[value]

    # --- replay ----------------------------------------------------------------------

    async def replay(
        self, sub: Subscriber, after: int, upto: int
    ) -> AsyncIterator[Rendered | Revoked]:
        """The subscriber's events in (after, upto], from the table, in id order; or, as
        soon as the subscriber's token stops holding, Revoked (and nothing more)."""
        while after < upto:
            rows = await self._fetch(
                after,
                upto,
                [sub.batch_id] if sub.batch_id else [],
                [sub.job_id] if sub.job_id else [],
            )
            if not rows:
                return
            for row in rows:
                if not sub.sees(row):
                    continue
                # Per event, like live deliveries: a replay may take a while, and the
                # answer is cached (and dropped when the token changes).
                if not await self.holds(sub):
                    yield Revoked()
                    return
                yield Rendered(sub.key, sub.render(row), row.id)
            after = rows[-1].id
            if len(rows) < PAGE:
                return

    async def holds(self, sub: Subscriber) -> bool:
        """Whether the subscriber's token still holds (anonymous ones have none)."""
        if sub.actor is None or self._token_valid is None:
            return True
        return await self._token_valid(sub.actor)

    # --- the cycle -------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            try:
                timeout = IDLE_POLL_SECONDS if self._by_batch or self._by_job else None
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout)
                self._wake.clear()
                await self._cycle()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("job event hub: delivery failed; retrying")
                await asyncio.sleep(1.0)

    async def _cycle(self) -> None:
        if self.reset or self._delivered is None:
            self.reset = False
            self._delivered = await self._horizon()
            self._announced = self._delivered
        for sub in self._pending:  # activated here, between deliveries: no gap, no overlap
            if sub.batch_id is not None:
                self._by_batch.setdefault(sub.batch_id, set()).add(sub)
            if sub.job_id is not None:
                self._by_job.setdefault(sub.job_id, set()).add(sub)
            sub.skip_upto = self._delivered
            if not sub.started.done():
                sub.started.set_result(self._delivered)
        self._pending.clear()
        for delay in (0.0, *WAIT_STEPS):
            if delay:
                await asyncio.sleep(delay)
            horizon = await self._horizon()
            if horizon > self._delivered:
                await self._deliver_upto(horizon)
            if self._delivered >= self._announced:
                return
        self._wake.set()  # writers still in flight: keep looking

    async def _horizon(self) -> int:
        async with self._db.read_session() as session:
            return await JobRepository(session).event_horizon()

    async def _deliver_upto(self, horizon: int) -> None:
        assert self._delivered is not None
        while self._delivered < horizon:
            if not self._by_batch and not self._by_job:
                self._delivered = horizon
                return
            rows = await self._fetch(
                self._delivered, horizon, list(self._by_batch), list(self._by_job)
            )
            upto = rows[-1].id if len(rows) == PAGE else horizon
            await self._deliver(rows, upto)
            self._delivered = upto

    async def _fetch(
        self, after: int, upto: int, batches: list[int], jobs: list[int]
    ) -> list[EventRow]:
        async with self._db.read_session() as session:
            return await JobRepository(session).events_in_range(
                after=after, upto=upto, batch_ids=batches, job_ids=jobs, limit=PAGE
            )

    async def _deliver(self, rows: Iterable[EventRow], upto: int) -> None:
        started, frames = time.perf_counter(), 0
        try:
            frames = await self._deliver_rows(rows, upto)
        finally:
            took = time.perf_counter() - started
            if took > SLOW_SECONDS:
                log.info("job event hub: %d frames took %.0f ms", frames, took * 1000)

    async def _deliver_rows(self, rows: Iterable[EventRow], upto: int) -> int:
        valid: dict[int, bool] = {}
        frames = 0
        for row in rows:
            subs = self._by_batch.get(row.batch_id, set()) | self._by_job.get(row.job_id, set())
            if not subs:
                continue
            rendered: dict[tuple[Any, ...], str] = {}
            for sub in subs:
                if sub.closed or row.id <= sub.skip_upto or not sub.sees(row):
                    continue
                if sub.actor is not None:
                    token = sub.actor.token_id
                    if token not in valid:
                        valid[token] = await self.holds(sub)
                    if not valid[token]:
                        sub.direct = False  # the generator ends it with an error
                        _offer(sub, Revoked(), upto)
                        continue
                text = rendered.get(sub.selection)
                if text is None:
                    text = rendered[sub.selection] = sub.render(row)
                    self.renders += 1
                frames += 1
                if sub.direct and sub.write is not None:
                    try:
                        await sub.write(sub.head + text + "}}}")
                    except Exception:  # the socket went away: its handler cleans up
                        sub.closed = True
                    continue
                _offer(sub, Rendered(sub.key, text, row.id), upto)
        return frames


def _offer(sub: Subscriber, item: Rendered | Lagged | Revoked, upto: int) -> None:
    try:
        sub.queue.put_nowait(item)
    except asyncio.QueueFull:
        # Far behind: drop what is queued; it re-reads the table up to this cycle's end.
        with contextlib.suppress(asyncio.QueueEmpty):
            while True:
                sub.queue.get_nowait()
        sub.queue.put_nowait(Lagged(upto))
        sub.skip_upto = upto


def now() -> datetime:
    return datetime.now(UTC)
