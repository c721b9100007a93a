"""The fleet worker's presence: register on boot, heartbeat, periodic tasks, disconnect.

Added only in worker processes (jobs/worker.py), after the AsyncIO middleware so
that its event loop exists; its threads run coroutines on that loop.
"""

from __future__ import annotations

import logging
import socket
import threading
from datetime import UTC, datetime

import dramatiq
from dramatiq.asyncio import get_event_loop_thread
from dramatiq.middleware import Middleware

import domain.artifacts.service  # noqa: F401  (registers the artifacts.expire periodic task)
from db.config import settings
from domain.maintenance import service as maintenance
from domain.periodic.service import Scheduler
from domain.workers import service as workers
from jobs import runtime

log = logging.getLogger(__name__)
HEARTBEAT_SECONDS = 5.0
# How long a QUEUED job (or a batch creation) may wait for its message before the
# maintenance sends it again.
maintenance.set_requeue_after(settings().requeue_after_seconds)


class Presence(Middleware):
    def __init__(self, *, heartbeat_seconds: float = HEARTBEAT_SECONDS) -> None:
        self.heartbeat_seconds = heartbeat_seconds
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._worker_id: int | None = None

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        loop = get_event_loop_thread()
        if loop is None:  # pragma: no cover - build_broker always adds AsyncIO
            raise RuntimeError("Presence needs the AsyncIO middleware before it")
        self._worker_id = loop.run_coroutine(self._register(worker.worker_threads))
        for name, target in (("presence", self._beat), ("periodic", self._periodic)):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(self.heartbeat_seconds * 2)
        loop = get_event_loop_thread()
        if loop is not None and self._worker_id is not None:
            loop.run_coroutine(self._disconnect(self._worker_id))

    async def _register(self, concurrency: int) -> int:
        async with runtime.unit_of_work() as uow:
            found = await workers.register_fleet(
                uow,
                host=socket.gethostname(),
                concurrency=concurrency,
                dynamic_metadata=runtime.worker_metadata(),
            )
            await uow.commit()
        runtime.set_worker_name(found.name)
        log.info("registered as worker %s", found.name)
        return found.id

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_seconds):
            loop = get_event_loop_thread()
            if loop is None or self._worker_id is None:
                return
            try:
                loop.run_coroutine(self._heartbeat(self._worker_id))
            except Exception:  # a database hiccup: the next beat tries again
                log.warning("heartbeat failed", exc_info=True)

    async def _heartbeat(self, worker_id: int) -> None:
        async with runtime.unit_of_work() as uow:
            await workers.heartbeat(
                uow, worker_id=worker_id, dynamic_metadata=runtime.worker_metadata()
            )
            await uow.commit()
        await runtime.save_unsaved()

    def _periodic(self) -> None:
        scheduler = Scheduler(
            runtime.unit_of_work, runner=runtime.worker_name(), now=lambda: datetime.now(UTC)
        )
        wait = 0.0
        while not self._stop.wait(wait):
            loop = get_event_loop_thread()
            if loop is None:
                return
            try:
                wait = loop.run_coroutine(scheduler.tick())
            except Exception:  # the database is away: try again in a while
                log.warning("periodic tasks could not run", exc_info=True)
                wait = self.heartbeat_seconds

    async def _disconnect(self, worker_id: int) -> None:
        async with runtime.unit_of_work() as uow:
            await workers.disconnect(uow, worker_id=worker_id)
            await uow.commit()
        log.info("worker %s disconnected", worker_id)
