"""Job execution at scale (issue 9), each figure against a baseline measured in this run.

1. Throughput: N no-op jobs (`builtin.echo`) end to end, createBatch → all COMPLETED,
   against Dramatiq alone processing N no-op messages on the same (embedded Redis)
   broker; worker processes of 4 threads; 1 and 2 processes; the sides alternate.
2. SQL per job: statements (PostgreSQL's own log, `log_statement = all`) and
   transactions (`pg_stat_database`) over a batch's whole life, per job.
3. Latency: an idle fleet, one job submitted at a time: createBatch sent → the job
   RUNNING (its `started_at`), p50 / p99.
4. Bulk: a batch of M items (a task type pull workers would take, so nothing runs)
   until `isCreationDone`, against one bulk `INSERT … SELECT` per table of the same
   rows in the same database; then `cancelBatch` of its M queued jobs.

Embedded PostgreSQL and Redis in a temporary folder (part 2 needs the embedded
PostgreSQL, whose settings it changes). Bounded: each phase gives up after 10 minutes.

    .venv/bin/python bench/execution.py [--jobs 10000] [--bulk 100000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import redis
from dramatiq import Message
from dramatiq.brokers.redis import RedisBroker
from harness import free_port, stop

from db.config import load_settings
from launcher.runtime import infrastructure, migrate

REPO = Path(__file__).resolve().parents[1]
LIMIT = 600.0
THREADS = 4


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)


def worker(env: dict[str, str], processes: int, log: Path) -> subprocess.Popen[bytes]:
    return start(
        [sys.executable, "-m", "launcher", "worker", "--no-migrate", "--processes",
         str(processes), "--threads", str(THREADS)],
        env,
        log,
    )  # fmt: skip


class Api:
    def __init__(self, env: dict[str, str], home: Path) -> None:
        self.port = free_port()
        self.log = home / "serve.log"
        self.process = start(
            [sys.executable, "-m", "launcher", "serve", "--no-worker", "--no-migrate"],
            {**env, "BATCHGRAPH_PORT": str(self.port), "BATCHGRAPH_RATE_LIMIT_ENABLED": "false"},
            self.log,
        )
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=300)
        deadline = time.monotonic() + 90
        while True:
            try:
                if self.client.get("/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(self.log.read_text())
            time.sleep(0.2)
        tokens = [w for w in self.log.read_text().split() if w.startswith("bg_")]
        self.token = tokens[0]

    def gql(self, query: str, **variables: Any) -> dict[str, Any]:
        body = self.client.post(
            "/graphql",
            json={"query": query, "variables": variables},
            headers={"authorization": f"Bearer {self.token}"},
        ).json()
        if "errors" in body:
            raise RuntimeError(body["errors"])
        return body["data"]  # type: ignore[no-any-return]

    def task_type(self, name: str, implementation: str) -> None:
        self.gql(
            """mutation($n: String!, $i: String!) { createTaskType(input: {name: $n,
            implementation: $i, maxAttempts: 1}) { __typename } }""",
            n=name,
            i=implementation,
        )

    def batch(self, task_type: str, n: int) -> str:
        definition = {
            "recipe": {"nodes": [{"name": "n", "taskType": task_type}]},
            "inputs": [{"i": i} for i in range(n)],
        }
        created = self.gql(
            """mutation($d: JSON!) { createBatch(input: {title: "b", definition: $d}) {
            __typename ... on BatchCreated { batch { id } } } }""",
            d=definition,
        )["createBatch"]
        return str(created["batch"]["id"])

    def counters(self, batch: str) -> dict[str, Any]:
        return self.gql(
            """query($id: ID!) { batch(id: $id) { isCreationDone
            counters { completed failed queued } } }""",
            id=batch,
        )["batch"]

    def close(self) -> None:
        self.client.close()
        stop(self.process)


def dramatiq_alone(env: dict[str, str], n: int, processes: int, home: Path) -> float:
    url = env["BROKER_URL"]
    counter = redis.Redis.from_url(url)
    counter.delete("bench:done")
    broker = RedisBroker(url=url)
    broker.declare_queue("bench")
    for _ in range(n):  # enqueued before the clock starts, like the batch's inputs
        broker.enqueue(
            Message(queue_name="bench", actor_name="bench.noop", args=(), kwargs={}, options={})
        )
    process = start(
        [sys.executable, "-m", "dramatiq", "bench.noop_worker", "--processes", str(processes),
         "--threads", str(THREADS)],
        env,
        home / "dramatiq.log",
    )  # fmt: skip
    started = time.perf_counter()
    try:
        while int(counter.get("bench:done") or 0) < n:
            if time.perf_counter() - started > LIMIT:
                raise RuntimeError("baseline did not finish")
            time.sleep(0.02)
        return time.perf_counter() - started
    finally:
        stop(process)
        broker.close()


def run_batch(api: Api, task_type: str, n: int) -> float:
    started = time.perf_counter()
    batch = api.batch(task_type, n)
    while True:
        found = api.counters(batch)["counters"]
        if found["completed"] + found["failed"] >= n:
            assert found["failed"] == 0, found
            return time.perf_counter() - started
        if time.perf_counter() - started > LIMIT:
            raise RuntimeError(f"not done: {found}")
        time.sleep(0.05)


@contextmanager
def workers(env: dict[str, str], processes: int, home: Path) -> Iterator[None]:
    process = worker(env, processes, home / "worker.log")
    time.sleep(3)  # registered and idle
    try:
        yield
    finally:
        stop(process)


def throughput(api: Api, env: dict[str, str], n: int, rounds: int, home: Path) -> None:
    print(f"\n1. {n} no-op jobs end to end vs Dramatiq alone (same broker, {THREADS} threads)")
    print(f"{'processes':>9} {'Dramatiq alone':>16} {'batchgraph':>16} {'ratio':>7}")
    rates: dict[int, float] = {}
    for processes in (1, 2):
        alone, ours = [], []
        for r in range(rounds):  # alternated: the machine is shared
            alone.append(dramatiq_alone(env, n, processes, home))
            name = f"noop-{processes}-{r}"
            api.task_type(name, "builtin.echo")
            with workers(env, processes, home):
                ours.append(run_batch(api, name, n))
        a, o = statistics.median(alone), statistics.median(ours)
        rates[processes] = n / o
        print(
            f"{processes:>9} {a:>6.1f} s {n / a:>5.0f}/s {o:>6.1f} s {n / o:>5.0f}/s"
            f" {n / o / (n / a):>6.2f}x",
            flush=True,
        )
    print(f"   2 processes / 1 process: {rates[2] / rates[1]:.2f}x (goal ≥ 1.6)")


async def sql_per_job(api: Api, env: dict[str, str], url: str, n: int, home: Path) -> None:
    print(f"\n2. SQL over the whole life of {n} jobs (1 worker process)")
    conn = await asyncpg.connect(_plain(url))
    try:
        await conn.execute("ALTER SYSTEM SET log_statement = 'all'")
        await conn.execute("SELECT pg_reload_conf()")
        api.task_type("counted", "builtin.echo")
        log = Path(await conn.fetchval("SELECT current_setting('data_directory')")) / "log"
        with workers(env, 1, home):
            before_lines = _lines(log)
            xacts = await _xacts(conn)
            run_batch(api, "counted", n)
            await asyncio.sleep(1.5)  # the last folds and heartbeats
            statements = _statements(log, before_lines)
            transactions = await _xacts(conn) - xacts
    finally:
        await conn.execute("ALTER SYSTEM RESET log_statement")
        await conn.execute("SELECT pg_reload_conf()")
        await conn.close()
    print(f"   statements per job:   {statements / n:.2f} (goal ≤ 3; {statements} in all)")
    print(f"   transactions per job: {transactions / n:.3f} (goal ≤ 0.5; {transactions} in all)")
    print("   (everything the database saw meanwhile: API polling, heartbeats, periodic tasks)")


def _plain(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


def _lines(log: Path) -> int:
    with log.open("rb") as f:
        return sum(1 for _ in f)


def _statements(log: Path, skip: int) -> int:
    found = 0
    with log.open("rb") as f:
        for i, line in enumerate(f):
            if i < skip:
                continue
            text = line.decode(errors="replace")
            if "LOG:  statement: " in text or "LOG:  execute " in text:
                sql = text.split(": ", 2)[-1].strip().upper()
                if not sql.startswith(("BEGIN", "COMMIT", "ROLLBACK", "LISTEN", "UNLISTEN")):
                    found += 1
    return found


async def _xacts(conn: Any) -> int:
    return int(
        await conn.fetchval(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database"
            " WHERE datname = current_database()"
        )
    )


async def latency(api: Api, env: dict[str, str], url: str, tries: int, home: Path) -> None:
    print(f"\n3. Idle fleet, one job submitted at a time ({tries} tries): sent → RUNNING")
    api.task_type("single", "builtin.echo")
    conn = await asyncpg.connect(_plain(url))
    found: list[float] = []
    answered: list[float] = []
    try:
        with workers(env, 1, home):
            for _ in range(tries):
                sent = datetime.now(UTC)
                batch = api.batch("single", 1)
                answered.append((datetime.now(UTC) - sent).total_seconds() * 1000)
                pk = int(_decode(batch).split(":")[1])
                deadline = time.monotonic() + 30
                while True:
                    started = await conn.fetchval(
                        "SELECT started_at FROM job WHERE batch_id = $1", pk
                    )
                    if started is not None:
                        found.append((started - sent).total_seconds() * 1000)
                        break
                    if time.monotonic() > deadline:
                        raise RuntimeError("the job never ran")
                    await asyncio.sleep(0.002)
                await asyncio.sleep(0.5)  # idle again
    finally:
        await conn.close()
    found.sort()
    p99 = found[min(len(found) - 1, round(0.99 * (len(found) - 1)))]
    print(
        f"   p50 {statistics.median(found):.1f} ms, p99 {p99:.1f} ms, max {found[-1]:.1f} ms"
        " (goals: p50 ≤ 20 ms, p99 ≤ 100 ms)"
    )
    print(
        f"   of which createBatch answered in p50 {statistics.median(answered):.1f} ms,"
        f" max {max(answered):.1f} ms"
    )
    if os.environ.get("BENCH_VERBOSE"):
        print("   all (ms):", [round(x) for x in found])
        print("   createBatch (ms):", [round(x) for x in answered])


def _decode(global_id: str) -> str:
    import base64

    return base64.b64decode(global_id + "=" * (-len(global_id) % 4)).decode()


async def bulk(api: Api, url: str, items: int) -> None:
    print(f"\n4. A batch of {items} items (jobs that wait for pull workers)")
    api.task_type("waits", "external")
    api.batch("waits", 1)  # the batch the baseline's rows hang on
    # The baseline runs before and after, each side after a CHECKPOINT: the machine's
    # background writes (and the rows the other side left) weigh on both alike.
    before = await baseline(url, items)
    await _checkpoint(url)
    started = time.perf_counter()
    batch = api.batch("waits", items)
    accepted = time.perf_counter() - started
    while not api.counters(batch)["isCreationDone"]:
        if time.perf_counter() - started > LIMIT:
            raise RuntimeError("creation did not finish")
        await asyncio.sleep(0.05)
    created = time.perf_counter() - started
    after = await baseline(url, items)
    base = min(before, after)
    print(f"   accepted {accepted:.2f} s; isCreationDone after {created:.2f} s")
    print(
        f"   baseline, one INSERT … SELECT per table of the same rows: {before:.2f} s before,"
        f" {after:.2f} s after → {created / base:.2f}x the faster (goal ≤ 2)"
    )
    await _checkpoint(url)
    started = time.perf_counter()
    canceled = api.gql(
        """mutation($id: ID!) { cancelBatch(id: $id) { __typename
        ... on BatchCanceled { canceledJobs } } }""",
        id=batch,
    )["cancelBatch"]["canceledJobs"]
    took = time.perf_counter() - started
    print(f"   cancelBatch of {canceled} queued jobs: {took:.2f} s (goal ≤ 2 s)")


async def _checkpoint(url: str) -> None:
    conn = await asyncpg.connect(_plain(url))
    try:
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()


async def baseline(url: str, items: int) -> float:
    """The rows a batch's creation writes (recipes, jobs, their two history rows),
    each table with one INSERT … SELECT, in one transaction; then removed."""
    conn = await asyncpg.connect(_plain(url))
    try:
        await conn.execute("CHECKPOINT")
        async with conn.transaction():
            batch, revision, workspace = await conn.fetchrow(
                "SELECT b.id, n.task_type_revision_id, b.workspace_id FROM batch b"
                " JOIN batch_node n ON n.batch_id = b.id ORDER BY b.id DESC LIMIT 1"
            )
            started = time.perf_counter()
            await conn.execute(
                """INSERT INTO recipe (batch_id, position, item, job_count, jobs_completed)
                SELECT $1, 1000000 + i, jsonb_build_object('i', i), 1, 0
                FROM generate_series(0, $2 - 1) i""",
                batch,
                items,
            )
            await conn.execute(
                """INSERT INTO job (workspace_id, batch_id, recipe_id, node,
                task_type_revision_id, parameters, status, priority, attempt, max_attempts,
                canceled_by_dependency)
                SELECT $1, $2, r.id, 'bulk', $3, r.item, 'QUEUED', 0, 1, 1, false
                FROM recipe r WHERE r.batch_id = $2 AND r.position >= 1000000
                ORDER BY r.position""",
                workspace,
                batch,
                revision,
            )
            await conn.execute(
                """INSERT INTO job_event (job_id, batch_id, from_status, to_status, attempt,
                reason)
                SELECT j.id, j.batch_id, s.f, s.t, 1, 'bulk'
                FROM job j CROSS JOIN (VALUES (NULL::job_status, 'PENDING'::job_status),
                                              ('PENDING', 'QUEUED')) s(f, t)
                WHERE j.batch_id = $1 AND j.node = 'bulk'""",
                batch,
            )
            took = time.perf_counter() - started
            raise _Undo(took)
    except _Undo as undo:
        return undo.took
    finally:
        await conn.close()


class _Undo(Exception):
    def __init__(self, took: float) -> None:
        self.took = took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--counted", type=int, default=2_000)
    parser.add_argument("--bulk", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--tries", type=int, default=40)
    parser.add_argument("--skip", default="", help="comma-separated parts to skip (1,2,3,4)")
    args = parser.parse_args()
    skip = set(args.skip.split(","))
    print(f"{time.strftime('%Y-%m-%d %H:%M')}, load {os.getloadavg()[0]:.2f} (2-core machine)")
    with tempfile.TemporaryDirectory(prefix="bg-bench-exec-") as tmp:
        home = Path(tmp)
        config = load_settings().model_copy(
            update={"home": home, "database_url": None, "broker_url": None}
        )
        with infrastructure(config) as infra:
            migrate(infra.database_url)
            env = {**os.environ, **infra.environment(), "BATCHGRAPH_HOME": str(home)}
            api = Api(env, home)
            try:
                if "1" not in skip:
                    throughput(api, env, args.jobs, args.rounds, home)
                if "2" not in skip:
                    asyncio.run(sql_per_job(api, env, infra.database_url, args.counted, home))
                if "3" not in skip:
                    asyncio.run(latency(api, env, infra.database_url, args.tries, home))
                if "4" not in skip:
                    with workers(env, 1, home):  # it creates the chunks past the first
                        asyncio.run(bulk(api, infra.database_url, args.bulk))
            finally:
                api.close()
    print(f"\nload afterwards {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
