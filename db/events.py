"""The LISTEN/NOTIFY event bus: one listening connection per process, any number of
subscribers.

Triggers NOTIFY in the transaction that makes a change, so only committed changes
are announced, in commit order. Notifications carry ids only; subscribers read the
rows. If the listening connection is lost, the bus reconnects and tells every
subscriber to RESYNC: re-read the table from the last id it saw, so nothing is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

log = logging.getLogger(__name__)

JOB_EVENTS = "batchgraph_job_events"
WORKERS = "batchgraph_workers"
# Batches whose p50/p95 durations the counters fold recomputed (db/repositories/counters.py).
METRICS = "batchgraph_metrics"
TOKENS = "batchgraph_tokens"
CHANNELS = (JOB_EVENTS, WORKERS, TOKENS, METRICS)
QUEUE_LIMIT = 10_000
RECONNECT_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class Notice:
    channel: str
    data: dict[str, Any]


RESYNC = Notice("resync", {})


class EventBus:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._subscribers: set[asyncio.Queue[Notice]] = set()
        self._callbacks: list[Callable[[Notice], None]] = []
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._lost = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="event-bus")
        await asyncio.wait_for(self._connected.wait(), 10)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[Notice]]:
        """A queue of notices, from now on, for as long as the block runs."""
        queue: asyncio.Queue[Notice] = asyncio.Queue(QUEUE_LIMIT)
        self._subscribers.add(queue)
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)

    def add_callback(self, callback: Callable[[Notice], None]) -> None:
        """Called (synchronously, in the listener) with every notice, RESYNC included."""
        self._callbacks.append(callback)

    def _publish(self, notice: Notice) -> None:
        for callback in self._callbacks:
            try:
                callback(notice)
            except Exception:
                log.exception("event bus callback failed")
        for queue in list(self._subscribers):
            try:
                queue.put_nowait(notice)
            except asyncio.QueueFull:
                # A subscriber far behind: make it re-read from the table instead.
                with contextlib.suppress(asyncio.QueueEmpty):
                    while True:
                        queue.get_nowait()
                queue.put_nowait(RESYNC)

    async def _run(self) -> None:
        first = True
        while True:
            try:
                async with self._engine.connect() as conn:
                    await self._listen(conn, resync=not first)
                    first = False
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("event bus connection lost; reconnecting")
            await asyncio.sleep(RECONNECT_SECONDS)

    async def _listen(self, conn: AsyncConnection, *, resync: bool) -> None:
        raw = await conn.get_raw_connection()
        driver: Any = raw.driver_connection
        self._lost.clear()

        def on_notify(_conn: Any, _pid: int, channel: str, payload: str) -> None:
            try:
                self._publish(Notice(channel, json.loads(payload)))
            except ValueError:
                log.warning("ignored a malformed notification on %s", channel)

        for channel in CHANNELS:
            await driver.add_listener(channel, on_notify)
        driver.add_termination_listener(lambda _c: self._lost.set())
        self._connected.set()
        if resync:
            self._publish(RESYNC)
        try:
            while not self._lost.is_set():
                try:
                    await asyncio.wait_for(self._lost.wait(), 15)
                except TimeoutError:
                    # Notices a connection that died without telling us (this raises).
                    await driver.execute("SELECT 1")
        finally:
            for channel in CHANNELS:
                with contextlib.suppress(Exception):
                    await driver.remove_listener(channel, on_notify)
