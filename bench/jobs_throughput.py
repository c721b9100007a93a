"""10,000 no-op jobs end to end (createBatch → all COMPLETED) against Dramatiq alone
processing 10,000 no-op messages on the same broker, with 1 and with 2 worker
processes (4 threads each), in the same run.

Embedded PostgreSQL and Redis unless DATABASE_URL / BROKER_URL are set (the
baseline needs a Redis broker). Bounded: each phase gives up after 10 minutes.

    .venv/bin/python bench/jobs_throughput.py [--jobs 10000]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import redis
from dramatiq import Message
from dramatiq.brokers.redis import RedisBroker
from harness import free_port, stop

from db.config import load_settings
from launcher.runtime import infrastructure, migrate

REPO = Path(__file__).resolve().parents[1]
LIMIT = 600.0


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)


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
    worker = start(
        [
            sys.executable,
            "-m",
            "dramatiq",
            "bench.noop_worker",
            "--processes",
            str(processes),
            "--threads",
            "4",
        ],
        env,
        home / "dramatiq.log",
    )
    started = time.perf_counter()
    try:
        while int(counter.get("bench:done") or 0) < n:
            if time.perf_counter() - started > LIMIT:
                raise RuntimeError("baseline did not finish")
            time.sleep(0.02)
        return time.perf_counter() - started
    finally:
        stop(worker, signal.SIGTERM)
        broker.close()


def gql(client: httpx.Client, token: str, query: str, **variables: Any) -> dict[str, Any]:
    body = client.post(
        "/graphql",
        json={"query": query, "variables": variables},
        headers={"authorization": f"Bearer {token}"},
    ).json()
    if "errors" in body:
        raise RuntimeError(body["errors"])
    return body["data"]  # type: ignore[no-any-return]


def batchgraph(env: dict[str, str], n: int, processes: int, home: Path, run: int) -> float:
    port = free_port()
    serve_env = {**env, "BATCHGRAPH_PORT": str(port)}
    log = home / f"serve-{run}.log"
    server = start(
        [sys.executable, "-m", "launcher", "serve", "--no-worker", "--no-migrate"],
        serve_env,
        log,
    )
    worker = start(
        [
            sys.executable,
            "-m",
            "launcher",
            "worker",
            "--processes",
            str(processes),
            "--threads",
            "4",
        ],
        env,
        home / f"worker-{run}.log",
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if client.get("/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(log.read_text())
                time.sleep(0.2)
            tokens = [w for w in log.read_text().split() if w.startswith("bg_")]
            token = tokens[0] if tokens else os.environ["BENCH_TOKEN"]
            os.environ["BENCH_TOKEN"] = token
            gql(
                client,
                token,
                """mutation($n: String!) { createTaskType(input: {name: $n,
                implementation: "builtin.echo", maxAttempts: 1}) { __typename } }""",
                n=f"noop-{run}",
            )
            definition = {
                "recipe": {"nodes": [{"name": "n", "taskType": f"noop-{run}"}]},
                "inputs": [{"i": i} for i in range(n)],
            }
            started = time.perf_counter()
            batch = gql(
                client,
                token,
                """mutation($d: JSON!) { createBatch(input: {title: "b",
                definition: $d}) { ... on BatchCreated { batch { id } } } }""",
                d=definition,
            )["createBatch"]["batch"]["id"]
            while True:
                counters = gql(
                    client,
                    token,
                    """query($id: ID!) { batch(id: $id) {
                    counters { completed failed } } }""",
                    id=batch,
                )["batch"]["counters"]
                if counters["completed"] + counters["failed"] >= n:
                    assert counters["failed"] == 0, counters
                    return time.perf_counter() - started
                if time.perf_counter() - started > LIMIT:
                    raise RuntimeError(f"not done: {counters}")
                time.sleep(0.2)
    finally:
        stop(worker, signal.SIGTERM)
        stop(server, signal.SIGTERM)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bg-bench-jobs-") as tmp:
        home = Path(tmp)
        config = load_settings().model_copy(update={"home": home})
        with infrastructure(config) as infra:
            if not (infra.broker_url or "").startswith(("redis", "unix")):
                print("the baseline needs a Redis broker (unset BROKER_URL for the embedded one)")
                return 2
            migrate(infra.database_url)
            env = {**os.environ, **infra.environment(), "BATCHGRAPH_HOME": str(home)}
            print(f"{args.jobs} no-op jobs / messages; workers of 4 threads; 2-core machine")
            print(f"{'processes':>9} {'Dramatiq alone':>16} {'batchgraph':>14} {'ratio':>7}")
            for run, processes in enumerate((1, 2)):
                alone = dramatiq_alone(env, args.jobs, processes, home)
                ours = batchgraph(env, args.jobs, processes, home, run)
                print(
                    f"{processes:>9} {alone:>8.1f} s {args.jobs / alone:>5.0f}/s"
                    f" {ours:>6.1f} s {args.jobs / ours:>4.0f}/s {ours / alone:>6.1f}x",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
