"""The fleet worker's presence: register on boot, heartbeat, maintenance, disconnect.

Added only in worker processes (jobs/worker.py), after the AsyncIO middleware so
that its event loop exists; the heartbeat thread runs coroutines on that loop.
"""

from __future__ import annotations

import logging
import os
import platform
import socket
import threading
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from typing import Any

import dramatiq
from dramatiq.asyncio import get_event_loop_thread
from dramatiq.middleware import Middleware

from db.config import settings
from domain.maintenance import service as maintenance
from domain.workers import service as workers
from jobs import runtime
from jobs.implementations import registry

log = logging.getLogger(__name__)
HEARTBEAT_SECONDS = 5.0
TICK_EVERY = 2  # heartbeats


def dynamic_metadata() -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "running": runtime.running_jobs(),
        "load": list(os.getloadavg()),
        "implementations": sorted(registry()),
        "versions": {
            "batchgraph": version("batchgraph"),
            "dramatiq": version("dramatiq"),
            "python": platform.python_version(),
        },
    }


class Presence(Middleware):
    def __init__(self, *, heartbeat_seconds: float = HEARTBEAT_SECONDS) -> None:
        self.heartbeat_seconds = heartbeat_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._worker_id: int | None = None

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        loop = get_event_loop_thread()
        if loop is None:  # pragma: no cover - build_broker always adds AsyncIO
            raise RuntimeError("Presence needs the AsyncIO middleware before it")
        registered = loop.run_coroutine(self._register(worker.worker_threads))
        self._worker_id = registered
        self._thread = threading.Thread(target=self._beat, name="presence", daemon=True)
        self._thread.start()

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.heartbeat_seconds * 2)
        loop = get_event_loop_thread()
        if loop is not None and self._worker_id is not None:
            loop.run_coroutine(self._disconnect(self._worker_id))

    async def _register(self, concurrency: int) -> int:
        async with runtime.unit_of_work() as uow:
            found = await workers.register_fleet(
                uow,
                host=socket.gethostname(),
                concurrency=concurrency,
                dynamic_metadata=dynamic_metadata(),
            )
            await uow.commit()
        runtime.set_worker_name(found.name)
        log.info("registered as worker %s", found.name)
        return found.id

    def _beat(self) -> None:
        beats = 0
        while not self._stop.wait(self.heartbeat_seconds):
            loop = get_event_loop_thread()
            if loop is None or self._worker_id is None:
                return
            beats += 1
            try:
                loop.run_coroutine(self._heartbeat(self._worker_id, beats % TICK_EVERY == 0))
            except Exception:  # a database hiccup: the next beat tries again
                log.exception("heartbeat failed")

    async def _heartbeat(self, worker_id: int, with_tick: bool) -> None:
        async with runtime.unit_of_work() as uow:
            await workers.heartbeat(uow, worker_id=worker_id, dynamic_metadata=dynamic_metadata())
            await uow.commit()
        if with_tick:
            async with runtime.unit_of_work() as uow:
                done = await maintenance.tick(
                    uow,
                    now=datetime.now(UTC),
                    # How long a QUEUED job (or a batch creation) may wait for its
                    # message before the maintenance tick sends it again.
                    queued_deadline=timedelta(seconds=settings().requeue_after_seconds),
                )
                await uow.commit()
            if done is not None and done != maintenance.Tick():
                log.info("maintenance: %s", done)

    async def _disconnect(self, worker_id: int) -> None:
        async with runtime.unit_of_work() as uow:
            await workers.disconnect(uow, worker_id=worker_id)
            await uow.commit()
        log.info("worker %s disconnected", worker_id)
