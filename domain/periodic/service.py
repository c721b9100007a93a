"""Periodic work in one place: named tasks with an interval, one runner at a time.

Any number of processes run the scheduler (every fleet worker, and API processes
unless switched off); for each due task, the one that takes the task's PostgreSQL
advisory lock runs it, in the transaction that records the run (last and next run,
outcome or error: visible in the API), so a task's work and its bookkeeping commit
together. A task that fails is retried at its next interval, not in a hot loop.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from db.uow import UnitOfWork

log = logging.getLogger(__name__)
# Outcomes of tasks run more often than this are logged at DEBUG.
CHATTY_INTERVAL = timedelta(minutes=1)
MAX_SLEEP_SECONDS = 1.0

Run = Callable[[UnitOfWork, datetime], Awaitable[str | None]]


@dataclass(frozen=True, slots=True)
class Periodic:
    name: str
    interval: timedelta
    run: Run  # does its work in the unit of work; returns a short outcome (or None)
    description: str = ""


REGISTRY: dict[str, Periodic] = {}


def periodic(name: str, *, seconds: float, description: str = "") -> Callable[[Run], Run]:
    """Register a task (a decorator). Names are dotted ``area.what`` and stable."""

    def register(run: Run) -> Run:
        REGISTRY[name] = Periodic(name, timedelta(seconds=seconds), run, description)
        return run

    return register


def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory lock key per task name."""
    return int.from_bytes(
        hashlib.sha256(f"periodic:{name}".encode()).digest()[:8], "big", signed=True
    )


class Scheduler:
    """Runs the due tasks of the registry; ``tick`` says how long to sleep until the next."""

    def __init__(
        self,
        new_uow: Callable[[], UnitOfWork],
        *,
        runner: str,
        now: Callable[[], datetime],
        tasks: Iterable[Periodic] | None = None,
    ) -> None:
        self._new_uow = new_uow
        self._runner = runner
        self._now = now
        self._tasks = {t.name: t for t in (tasks if tasks is not None else REGISTRY.values())}
        self._ensured = False

    async def tick(self) -> float:
        """Run what is due now; the seconds until the next task is due (at most 1 s)."""
        if not self._ensured:
            async with self._new_uow() as uow:
                for task in self._tasks.values():
                    await uow.periodic.ensure(
                        task.name, interval_seconds=task.interval.total_seconds(), now=self._now()
                    )
                await uow.commit()
            self._ensured = True
        async with self._new_uow() as uow:
            next_runs = await uow.periodic.next_runs()
        now = self._now()
        for name, task in self._tasks.items():
            due = next_runs.get(name)
            if due is not None and due <= now:
                await self.run(task)
        async with self._new_uow() as uow:
            next_runs = await uow.periodic.next_runs()
        upcoming = [at for name, at in next_runs.items() if name in self._tasks]
        wait = min(upcoming, default=now) - self._now()
        return max(0.0, min(wait.total_seconds(), MAX_SLEEP_SECONDS))

    async def run(self, task: Periodic) -> bool:
        """Run one task if it is due and no other process is running it. True if it ran."""
        try:
            async with self._new_uow() as uow:
                if not await uow.try_advisory_xact_lock(lock_key(task.name)):
                    return False
                row = await uow.periodic.get(task.name, for_update=True)
                started = self._now()
                if row is None or row.next_run_at > started:
                    return False
                outcome = await task.run(uow, started)
                row.last_started_at = started
                row.last_finished_at = self._now()
                row.last_outcome = (outcome or "")[:500] or None
                row.last_error = None
                row.runs += 1
                row.next_run_at = started + task.interval
                row.runner = self._runner
                await uow.commit()
            if outcome:
                # Tasks that run every few seconds (the counters fold) would fill the
                # log while jobs run: their outcome is kept on their row instead.
                frequent = task.interval < CHATTY_INTERVAL
                log.log(logging.DEBUG if frequent else logging.INFO, "%s: %s", task.name, outcome)
            return True
        except Exception as exc:
            log.exception("periodic task %s failed", task.name)
            await self._record_failure(task, exc)
            return False

    async def _record_failure(self, task: Periodic, exc: Exception) -> None:
        try:
            async with self._new_uow() as uow:
                row = await uow.periodic.get(task.name, for_update=True)
                if row is not None:
                    now = self._now()
                    row.last_finished_at = now
                    row.last_error = f"{type(exc).__name__}: {exc}"[:500]
                    row.next_run_at = now + task.interval
                    row.runner = self._runner
                    await uow.commit()
        except Exception:  # the database is away: the next tick tries again
            log.warning("could not record the failure of %s", task.name)
