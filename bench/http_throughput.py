"""Request throughput of the real server: GraphQL against a plain endpoint of the same process.

Starts `batchgraph serve --no-worker` on 127.0.0.1 (embedded PostgreSQL and Redis in a
temporary folder unless DATABASE_URL / BROKER_URL are set), seeds a few task types
through the API, then for each scenario keeps CONCURRENCY requests in flight for
SECONDS and prints requests/s, p50/p99 latency, and the ratio to the baseline
(GET /healthz: routing, middleware and JSON, no GraphQL, no database) measured in
the same run. Bounded in time; stops the server it started.

    .venv/bin/python bench/http_throughput.py [--seconds 4] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from harness import free_port, serve

TASK_TYPES = 20
SCENARIOS: list[tuple[str, str, dict[str, Any] | None, bool]] = [
    ("baseline GET /healthz", "GET", None, False),
    ("GraphQL { viewer } (anonymous)", "POST", {"query": "{ viewer { authenticated } }"}, False),
    (
        "GraphQL { apiMetadata } with token",
        "POST",
        {"query": "{ apiMetadata { version limits { maxPageSize } } }"},
        True,
    ),
    (
        f"GraphQL taskTypes(first: {TASK_TYPES}) + workspace + revision, token",
        "POST",
        {
            "query": "{ taskTypes(first: 20) { totalCount edges { node { name workspace { name } "
            "currentRevision { revision parametersSchema } } } } }"
        },
        True,
    ),
]


async def load(
    client: httpx.AsyncClient,
    method: str,
    body: dict[str, Any] | None,
    headers: dict[str, str],
    seconds: float,
    concurrency: int,
) -> list[float]:
    url = "/healthz" if body is None else "/graphql"
    latencies: list[float] = []
    stop_at = time.monotonic() + seconds

    async def one_client() -> None:
        while time.monotonic() < stop_at:
            started = time.perf_counter()
            response = await (
                client.get(url) if method == "GET" else client.post(url, json=body, headers=headers)
            )
            latencies.append(time.perf_counter() - started)
            if response.status_code != 200 or b'"errors"' in response.content:
                raise RuntimeError(f"{url}: {response.status_code} {response.text[:200]}")

    await asyncio.gather(*(one_client() for _ in range(concurrency)))
    return latencies


async def seed(client: httpx.AsyncClient, token: str) -> None:
    for i in range(TASK_TYPES):
        response = await client.post(
            "/graphql",
            headers={"authorization": f"Bearer {token}"},
            json={
                "query": "mutation($n: String!) { createTaskType(input: {name: $n, "
                'parametersSchema: {type: "object"}}) { __typename } }',
                "variables": {"n": f"bench-{i:02d}"},
            },
        )
        assert response.json()["data"]["createTaskType"]["__typename"] == "TaskTypeCreated"


async def run(base: str, token: str, seconds: float, concurrency: int) -> None:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
        await seed(client, token)
        auth = {"authorization": f"Bearer {token}"}
        print(f"{'scenario':<62} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'vs base':>8}")
        baseline = None
        for name, method, body, with_token in SCENARIOS:
            await load(client, method, body, auth if with_token else {}, 0.5, concurrency)  # warm
            latencies = await load(
                client, method, body, auth if with_token else {}, seconds, concurrency
            )
            rate = len(latencies) / seconds
            baseline = baseline or rate
            quantiles = statistics.quantiles(latencies, n=100)
            print(
                f"{name:<62} {rate:>8.0f} {quantiles[49] * 1000:>8.1f} "
                f"{quantiles[98] * 1000:>8.1f} {rate / baseline:>8.2f}"
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bg-bench-") as home:
        env = {**os.environ, "BATCHGRAPH_HOME": home, "BATCHGRAPH_PORT": str(free_port())}
        with serve(env, Path(home) / "serve.log", "--no-worker") as (base, token):
            assert token is not None
            print(
                f"server: 1 uvicorn process; load: {args.concurrency} concurrent keep-alive "
                f"clients for {args.seconds:.0f}s per scenario, same machine ({os.cpu_count()}"
                " cores)"
            )
            asyncio.run(run(base, token, args.seconds, args.concurrency))
    return 0


if __name__ == "__main__":
    sys.exit(main())
