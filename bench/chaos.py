"""Chaos: N numbered jobs through kill -9 of fleet workers, a broker restart and a
PostgreSQL restart; then every job must have completed exactly once.

Everything runs on private instances this script starts and stops (bench/private.py):
a PostgreSQL (pgserver's binaries, pg_ctl, 127.0.0.1), a redis-server (127.0.0.1, no
persistence: a restart loses the queued messages) and 2–3 `batchgraph worker`
commands (one Dramatiq process each). The faults fire when the batch reaches random
points of its progress (so they always land mid-batch, whatever the machine's speed):

* ``--kills`` times, kill -9 of one fleet: either every process of it (a host dying)
  or only its Dramatiq worker process (its master then stops); a new one starts;
* one broker restart (kill -9 of redis-server, back empty after ``--broker-down`` s);
* one PostgreSQL restart (``pg_ctl stop -m immediate``, back after ``--down`` s).

Then it counts, from the database: jobs completed exactly once (one COMPLETED event),
stranded jobs (not final), duplicate completions, failed jobs, numbers missing, and
whether the batch counters agree. Exits 1 on any violation, 2 on a time-out (``--limit``).

    .venv/bin/python -m bench.chaos [--jobs 2000] [--workers 3] [--seed N]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from sqlalchemy import func, select

from bench.private import Fleet, PrivatePostgres, PrivateRedis, worker_env
from db.enums import CachePolicy, JobStatus, TokenRole
from db.models import Job, JobEvent, Worker
from db.session import Database, connect

FINAL = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELED})


@dataclass
class Config:
    jobs: int = 2000
    workers: int = 3
    threads: int = 4
    seconds: float = 0.25  # each job sleeps this long (> 0.2 s: claimed one at a time)
    kills: int = 3
    down: float = 6.0  # PostgreSQL stays down this long
    broker_down: float = 2.0
    limit: float = 600.0  # give up after this long (from the batch's creation)
    seed: int | None = None
    max_attempts: int = 20  # every kill may cost a job an attempt
    requeue_after: float = 5.0  # BATCHGRAPH_REQUEUE_AFTER_SECONDS for the workers
    logs: Path | None = None  # keep the processes' logs here (else a temporary folder)
    quiet: bool = False


@dataclass
class Fault:
    at_fraction: float  # fires when this fraction of the jobs has completed
    kind: str  # "kill", "broker", "postgres"
    fired_after: float | None = None  # seconds after the batch's creation
    unfinished: int | None = None  # jobs not final when it fired
    detail: str = ""


@dataclass
class Report:
    jobs: int
    seconds: float = 0.0
    timed_out: bool = False
    completed_once: int = 0
    stranded: int = 0
    duplicates: int = 0
    failed: int = 0
    canceled: int = 0
    missing_numbers: int = 0
    reruns: int = 0  # jobs that needed more than one attempt (their worker was killed)
    counters_exact: bool = False
    faults: list[Fault] = field(default_factory=list)

    @property
    def violations(self) -> list[str]:
        found = []
        if self.completed_once != self.jobs:
            found.append(f"{self.jobs - self.completed_once} jobs not completed exactly once")
        for name in ("stranded", "duplicates", "failed", "canceled", "missing_numbers"):
            if getattr(self, name):
                found.append(f"{getattr(self, name)} {name.replace('_', ' ')}")
        if not self.counters_exact:
            found.append("batch counters disagree with the jobs")
        if self.timed_out:
            found.append("timed out")
        return found


def _schedule(config: Config, rng: random.Random) -> list[Fault]:
    kinds = ["kill"] * config.kills + ["broker", "postgres"]
    rng.shuffle(kinds)
    fractions = sorted(rng.uniform(0.05, 0.7) for _ in kinds)
    return [Fault(f, k) for f, k in zip(fractions, kinds, strict=True)]


def _say(config: Config, text: str) -> None:
    if not config.quiet:
        print(text, flush=True)


async def _until(check: Callable[[], Awaitable[bool]], seconds: float, what: str) -> None:
    """Poll ``check`` (a failing read counts as "not yet") until it holds or time runs out."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if await check():
                return
        await asyncio.sleep(0.25)
    raise TimeoutError(f"timed out after {seconds:.0f} s waiting for {what}")


async def _counts(db: Database, batch_id: int) -> Counter[JobStatus] | None:
    """Jobs by status, or None while the database is away."""
    try:
        async with db.read_session() as s:
            rows = await s.execute(
                select(Job.status, func.count())
                .where(Job.batch_id == batch_id)
                .group_by(Job.status)
            )
            return Counter({status: int(n) for status, n in rows})
    except Exception:
        return None


async def _busy_pids(db: Database) -> set[int]:
    """The pids of the worker processes that hold RUNNING jobs (as they registered)."""
    try:
        async with db.read_session() as s:
            rows = await s.scalars(
                select(Worker.dynamic_metadata["pid"].as_integer())
                .join(Job, Job.worker == Worker.name)
                .where(Job.status == JobStatus.RUNNING)
                .distinct()
            )
            return {int(pid) for pid in rows if pid is not None}
    except Exception:
        return set()


async def _setup(db: Database, dispatcher: Any, config: Config) -> int:
    from db.uow import UnitOfWork
    from domain.auth.rules import Actor
    from domain.batches import service as batches
    from domain.tasktypes import service as tasktypes
    from domain.tasktypes.rules import RevisionFields

    actor = Actor(token_id=0, owner="chaos bench", role=TokenRole.ADMIN)
    async with UnitOfWork(db.write_session) as uow:
        await tasktypes.create_task_type(
            uow,
            spec=tasktypes.TaskTypeSpec(
                workspace="default",
                name="numbered",
                fields=RevisionFields(
                    description="sleeps, so that faults land while jobs run",
                    parameters_schema={"type": "object", "required": ["i"]},
                    result_schema={"type": "object"},
                    implementation="builtin.sleep",
                    timeout_seconds=60,
                    max_attempts=config.max_attempts,
                    cache_policy=CachePolicy.NONE,
                ),
            ),
            actor=actor,
        )
        await uow.commit()
    async with UnitOfWork(db.write_session, dispatcher=dispatcher) as uow:
        created = await batches.create_batch(
            uow,
            spec=batches.BatchSpec(
                workspace="default",
                title=f"chaos: {config.jobs} numbered jobs",
                definition={
                    "recipe": {"nodes": [{"name": "n", "taskType": "numbered"}]},
                    "inputs": [{"i": i, "seconds": config.seconds} for i in range(config.jobs)],
                },
            ),
            actor=actor,
        )
        await uow.commit()
    assert created.batch is not None, created
    return created.batch.id


async def verify(db: Database, batch_id: int, report: Report) -> None:
    from db.repositories import counters

    completions = (
        select(func.count())
        .select_from(JobEvent)
        .where(JobEvent.job_id == Job.id, JobEvent.to_status == JobStatus.COMPLETED)
        .scalar_subquery()
    )
    async with db.read_session() as s:
        rows = (
            await s.execute(
                select(
                    Job.parameters["i"].as_integer(), Job.status, Job.attempt, completions
                ).where(Job.batch_id == batch_id)
            )
        ).all()
        nodes = (await counters.nodes(s, [batch_id]))[0]
    numbers = Counter(int(i) for i, *_ in rows)
    report.missing_numbers = sum(1 for i in range(report.jobs) if numbers[i] != 1)
    report.completed_once = sum(1 for _, st, _, c in rows if st is JobStatus.COMPLETED and c == 1)
    report.duplicates = sum(1 for *_, c in rows if c > 1)
    report.stranded = sum(1 for _, st, _, _ in rows if st not in FINAL)
    report.failed = sum(1 for _, st, _, _ in rows if st is JobStatus.FAILED)
    report.canceled = sum(1 for _, st, _, _ in rows if st is JobStatus.CANCELED)
    report.reruns = sum(1 for _, _, attempt, _ in rows if attempt > 1)
    by_status = Counter({st: 0 for st in JobStatus}) + Counter(st for _, st, _, _ in rows)
    report.counters_exact = len(nodes) == 1 and all(
        getattr(nodes[0], st.value.lower()) == by_status[st] for st in JobStatus
    )


class Chaos:
    """The private services, the fleets, and the faults done to them."""

    def __init__(self, config: Config, logs: Path, rng: random.Random) -> None:
        self.config = config
        self.logs = logs
        self.rng = rng
        self.pg: PrivatePostgres | None = None
        self.redis: PrivateRedis | None = None
        self.fleets: list[Fleet] = []
        self.env: dict[str, str] = {}
        self._started = 0

    def start_services(self) -> str:
        self.pg = PrivatePostgres()
        self.pg.start()
        self.redis = PrivateRedis()
        self.redis.start()
        url = self.pg.create_database("batchgraph")
        from launcher.runtime import migrate  # the launcher's migrate, as `serve` runs it

        migrate(url)
        self.env = worker_env(
            url, self.redis.url, BATCHGRAPH_REQUEUE_AFTER_SECONDS=str(self.config.requeue_after)
        )
        return url

    def start_fleet(self) -> Fleet:
        self._started += 1
        log = self.logs / f"worker-{self._started}.log"
        return Fleet(self.env, log, processes=1, threads=self.config.threads)

    def kill(self, busy: set[int]) -> str | None:
        """kill -9 of a fleet that is running jobs (``busy``: the pids of the worker
        processes that hold RUNNING jobs) — all of it, or its Dramatiq worker process —,
        then a new one in its place. None when no fleet is busy yet (try again later)."""
        slots = [
            k
            for k, fleet in enumerate(self.fleets)
            if {p.pid for p in fleet.worker_processes()} & busy
        ]
        if not slots:
            return None
        slot = self.rng.choice(slots)
        fleet = self.fleets[slot]
        workers = [p for p in fleet.worker_processes() if p.pid in busy]
        if self.rng.random() < 0.5:
            victim = self.rng.choice(workers)
            victim.kill()
            what = f"kill -9 of the Dramatiq worker process {victim.pid} of fleet {slot}"
            try:  # its master notices, stops the rest and exits
                fleet.process.wait(30)
            except subprocess.TimeoutExpired:
                fleet.kill9()
        else:
            what = f"kill -9 of all {len(fleet.tree())} processes of fleet {slot}"
            fleet.kill9()
        self.fleets[slot] = self.start_fleet()
        return what + "; a new fleet started"

    def restart_broker(self) -> str:
        assert self.redis is not None
        self.redis.kill()
        time.sleep(self.config.broker_down)
        self.redis.start()
        return f"redis-server killed, back empty after {self.config.broker_down:.0f} s"

    def restart_postgres(self) -> str:
        assert self.pg is not None
        self.pg.stop("immediate")
        time.sleep(self.config.down)
        self.pg.start()
        return f"pg_ctl stop -m immediate, started again after {self.config.down:.0f} s"

    def close(self) -> None:
        for fleet in self.fleets:
            fleet.stop(timeout=15)
        if self.pg is not None:
            self.pg.close()
        if self.redis is not None:
            self.redis.close()


async def run(config: Config) -> Report:
    """Start everything, run the batch through the faults, count, stop everything."""
    from domain.jobs import revisions
    from jobs.broker import build_broker
    from jobs.dispatch import DramatiqDispatcher

    seed = config.seed if config.seed is not None else random.randrange(1_000_000)
    rng = random.Random(seed)
    logs = config.logs or Path(tempfile.mkdtemp(prefix="bg-chaos-"))
    logs.mkdir(parents=True, exist_ok=True)
    report = Report(jobs=config.jobs, faults=_schedule(config, rng))
    _say(
        config,
        f"chaos: {config.jobs} numbered jobs of {config.seconds} s, {config.workers} fleet"
        f" workers x {config.threads} threads, {config.kills} kills, seed {seed}; logs in {logs}",
    )
    chaos = Chaos(config, logs, rng)
    db: Database | None = None
    broker = None
    revisions.forget()  # a process-wide cache of revision rows: this is a new database
    try:
        url = await asyncio.to_thread(chaos.start_services)
        db = connect(url, pool_size=2, max_overflow=2)
        chaos.fleets = [chaos.start_fleet() for _ in range(config.workers)]

        async def all_registered() -> bool:
            async with db.read_session() as s:
                n = await s.scalar(
                    select(func.count()).select_from(Worker).where(Worker.connected_at.is_not(None))
                )
            return n == config.workers

        await _until(all_registered, 90, "the fleet to register")
        assert chaos.redis is not None
        broker = build_broker(chaos.redis.url)
        created = time.monotonic()
        batch_id = await _setup(db, DramatiqDispatcher(broker), config)
        pending = list(report.faults)
        while True:
            elapsed = time.monotonic() - created
            if elapsed > config.limit:
                report.timed_out = True
                break
            counts = await _counts(db, batch_id)
            if counts is not None:
                done = counts[JobStatus.COMPLETED]
                unfinished = config.jobs - sum(counts[s] for s in FINAL)
                if sum(counts.values()) == config.jobs and unfinished == 0:
                    break
                fault = pending[0] if pending else None
                if fault is not None and done >= fault.at_fraction * config.jobs:
                    if fault.kind == "kill":
                        busy = await _busy_pids(db)
                        detail = await asyncio.to_thread(chaos.kill, busy) if busy else None
                    elif fault.kind == "broker":
                        detail = await asyncio.to_thread(chaos.restart_broker)
                    else:
                        detail = await asyncio.to_thread(chaos.restart_postgres)
                    if detail is None:  # no fleet is running jobs right now
                        await asyncio.sleep(0.25)
                        continue
                    pending.pop(0)
                    fault.fired_after, fault.unfinished, fault.detail = elapsed, unfinished, detail
                    _say(
                        config,
                        f"  +{elapsed:5.1f} s  [{done}/{config.jobs} completed,"
                        f" {unfinished} unfinished]  {fault.detail}",
                    )
                    continue
            await asyncio.sleep(0.25)
        report.seconds = time.monotonic() - created

        async def verified() -> bool:
            await verify(db, batch_id, report)
            return True

        await _until(verified, 30, "the counts")
    finally:
        if broker is not None:
            broker.close()
        if db is not None:
            await db.dispose()
        await asyncio.to_thread(chaos.close)
        revisions.forget()
    if not report.violations and config.logs is None:
        shutil.rmtree(logs, ignore_errors=True)
    return report


def summary(report: Report) -> str:
    fired = sum(1 for f in report.faults if f.fired_after is not None)
    lines = [
        f"{'timed out after' if report.timed_out else 'done in'} {report.seconds:.1f} s"
        f" ({report.jobs / report.seconds:.0f} jobs/s through {fired} faults):",
        f"  completed exactly once  {report.completed_once}/{report.jobs}",
        f"  stranded                {report.stranded}",
        f"  duplicate completions   {report.duplicates}",
        f"  failed / canceled       {report.failed} / {report.canceled}",
        f"  numbers missing         {report.missing_numbers}",
        f"  re-run (new attempt)    {report.reruns}",
        f"  batch counters          {'exact' if report.counters_exact else 'WRONG'}",
    ]
    problems = report.violations
    lines.append("VIOLATIONS: " + "; ".join(problems) if problems else "OK: no violation")
    return "\n".join(lines)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    defaults = Config()
    parser.add_argument("--jobs", type=int, default=defaults.jobs)
    parser.add_argument("--workers", type=int, default=defaults.workers, help="fleet workers")
    parser.add_argument("--threads", type=int, default=defaults.threads)
    parser.add_argument("--seconds", type=float, default=defaults.seconds, help="per job")
    parser.add_argument("--kills", type=int, default=defaults.kills)
    parser.add_argument("--down", type=float, default=defaults.down, help="PostgreSQL down (s)")
    parser.add_argument("--broker-down", type=float, default=defaults.broker_down)
    parser.add_argument("--limit", type=float, default=defaults.limit, help="give up after (s)")
    parser.add_argument(
        "--max-attempts",
        type=int,
        default=defaults.max_attempts,
        help="of the task type; 1 with --kills 0: no run may be lost at all",
    )
    parser.add_argument("--seed", type=int)
    parser.add_argument("--logs", type=Path, help="keep the processes' logs in this folder")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)  # stop what it started, as on Ctrl-C
    try:
        report = asyncio.run(
            run(
                Config(
                    jobs=args.jobs,
                    workers=args.workers,
                    threads=args.threads,
                    seconds=args.seconds,
                    kills=args.kills,
                    down=args.down,
                    broker_down=args.broker_down,
                    limit=args.limit,
                    seed=args.seed,
                    max_attempts=args.max_attempts,
                    logs=args.logs,
                )
            )
        )
    except KeyboardInterrupt:
        print("interrupted; everything it started was stopped", file=sys.stderr)
        return 130
    print(summary(report), flush=True)
    if report.timed_out:
        return 2
    return 1 if report.violations else 0


if __name__ == "__main__":
    sys.exit(main())
