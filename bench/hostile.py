"""Hostile documents against the real server: how fast each family is refused, and how
/healthz answers while clients keep sending them.

Starts `batchgraph serve --no-worker` on 127.0.0.1 (embedded PostgreSQL and Redis in
a temporary folder unless DATABASE_URL / BROKER_URL are set). For each family: TRIES
sequential requests, p50/p99 of the time to the refusal (status and code checked).
Then CLIENTS clients send hostile documents back to back for SECONDS while one client
polls /healthz every 10 ms: p50/p99/max of /healthz. Bounded; stops what it started.

    .venv/bin/python bench/hostile.py [--tries 100] [--seconds 30] [--clients 4]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from harness import free_port, serve


def fragment_bomb(levels: int = 40) -> bytes:
    chain = [f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}" for i in range(levels)]
    last = f"fragment F{levels} on Query {{ viewer {{ role }} }}"
    return json.dumps({"query": "query B { ...F0 } " + " ".join(chain) + " " + last}).encode()


def repeated_fields() -> bytes:
    ops = [
        {"query": f"query Q{i} {{ " + " ".join(["viewer { role }"] * 400) + " }"} for i in range(10)
    ]
    return json.dumps(ops).encode()


def no_cost_limit() -> bytes:
    tree = (
        "batches(first: 100) { edges { node { jobs(first: 100) { edges { node {"
        " events(first: 100) { edges { node { toStatus } } } } } } } } }"
    )
    query = "{ " + " ".join(f"a{i}: {tree}" for i in range(30)) + " }"
    return json.dumps([{"query": query}] * 10).encode()


def at_every_limit() -> bytes:
    """A document within the parser's and the shape's limits (30 aliases, 9 deep,
    ~4,000 tokens) that graphql-core validates in full, then refused by its cost:
    the time to its refusal bounds validation."""
    fields = "id title createdAt lastModifiedAt description status"
    tree = (
        "batches(first: 100) { totalCount pageInfo { hasNextPage endCursor } edges { cursor"
        f" node {{ {fields} jobs(first: 100) {{ totalCount edges {{ cursor node {{ id status"
        " node createdAt startedAt completedAt events(first: 100) { totalCount edges {"
        " cursor node { eventId fromStatus toStatus at } } } } } } } } }"
    )
    query = "{ " + " ".join(f"a{i}: {tree}" for i in range(30)) + " }"
    return json.dumps({"query": query}).encode()


def huge_comment() -> bytes:
    return json.dumps({"query": "{ __typename } #" + "x" * 15_000_000}).encode()


def huge_string() -> bytes:
    return json.dumps({"query": '{ workspace(name: "' + "x" * 15_000_000 + '") { id } }'}).encode()


def deep_json() -> bytes:
    nested = b"[" * 1000 + b"]" * 1000
    return b'{"query": "query($v: JSON) { __typename }", "variables": {"v": ' + nested + b"}}"


FAMILIES = {
    "fragment bomb (41 fragments, 2^40 spreads)": fragment_bomb(),
    "repeated fields (10 ops x 400 copies)": repeated_fields(),
    "no cost limit (10 ops x 30 aliases x 100^3)": no_cost_limit(),
    "at every limit, validated, then its cost": at_every_limit(),
    "15 MB comment": huge_comment(),
    "15 MB string literal": huge_string(),
    "JSON nested 1,000 deep in variables": deep_json(),
}
HEADERS = {"content-type": "application/json"}


def quantiles(samples: list[float]) -> tuple[float, float, float]:
    cut = statistics.quantiles(samples, n=100)
    return cut[49] * 1000, cut[98] * 1000, max(samples) * 1000


async def refusal_times(client: httpx.AsyncClient, tries: int) -> None:
    print(f"{'family':<46} {'bytes':>10} {'status':>6} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for name, body in FAMILIES.items():
        samples: list[float] = []
        status = 0
        for _ in range(tries):
            started = time.perf_counter()
            response = await client.post("/graphql", content=body, headers=HEADERS)
            samples.append(time.perf_counter() - started)
            status = response.status_code
            payload = response.json()
            errors = (
                [e for r in payload for e in r["errors"]]
                if isinstance(payload, list)
                else payload["errors"]
            )
            assert 400 <= status < 500, payload
            assert all(e["extensions"]["code"] for e in errors), payload
        p50, p99, top = quantiles(samples)
        print(f"{name:<46} {len(body):>10,} {status:>6} {p50:>8.1f} {p99:>8.1f} {top:>8.1f}")


async def healthz_under_attack(base: str, seconds: float, clients: int) -> None:
    stop_at = time.monotonic() + seconds
    sent = 0
    bodies = itertools.cycle([b for b in FAMILIES.values() if len(b) < 1_000_000])

    async def attacker() -> None:
        nonlocal sent
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            while time.monotonic() < stop_at:
                await client.post("/graphql", content=next(bodies), headers=HEADERS)
                sent += 1

    async def prober() -> list[float]:
        found: list[float] = []
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            while time.monotonic() < stop_at:
                started = time.perf_counter()
                response = await client.get("/healthz")
                found.append(time.perf_counter() - started)
                assert response.status_code == 200
                await asyncio.sleep(0.01)
        return found

    results = await asyncio.gather(prober(), *(attacker() for _ in range(clients)))
    p50, p99, top = quantiles(results[0])
    print(
        f"\n/healthz while {clients} clients sent hostile documents for {seconds:.0f} s"
        f" ({sent} refused, {sent / seconds:.0f}/s; the 15 MB families left out of the mix):"
        f"\n  {len(results[0])} probes: p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {top:.1f} ms"
    )


async def run(base: str, tries: int, seconds: float, clients: int) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        for body in FAMILIES.values():  # warm the caches the refusals may use
            await client.post("/graphql", content=body, headers=HEADERS)
        await refusal_times(client, tries)
    await healthz_under_attack(base, seconds, clients)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tries", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    with tempfile.TemporaryDirectory(prefix="bg-bench-") as home:
        env = {**os.environ, "BATCHGRAPH_HOME": home, "BATCHGRAPH_PORT": str(free_port())}
        with serve(env, Path(home) / "serve.log", "--no-worker") as (base, _):
            print(f"server: 1 `batchgraph serve` process on {base}; client on the same machine")
            asyncio.run(run(base, args.tries, args.seconds, args.clients))
    return 0


if __name__ == "__main__":
    sys.exit(main())
