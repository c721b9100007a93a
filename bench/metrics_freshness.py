"""Metrics freshness (issue 12): from a job's completion to its node's metrics showing it,
while ~1,000 transitions per second flow through the one path.

A real `batchgraph serve --no-worker` (it runs the periodic tasks, `counters.fold`
every 0.5 s among them) on a database of its own. This process plays the workers: a
batch of JOBS jobs over NODES nodes, all QUEUED; DRIVERS concurrent drivers, each
owning some nodes, move jobs QUEUED → RUNNING and RUNNING → COMPLETED (with a run
time) through domain/jobs/moves.py, GROUP jobs per transaction, paced to RATE
transitions per second in all. A client polls the API every POLL seconds for the
batch's node metrics (`nodeMetrics { completed percentilesCompleted }`).

For every completing transaction (its commit time, and per node the number of
COMPLETED jobs it brought the node to — a node's completions are sequential, as one
driver owns it), the freshness is the time until a poll's answer shows that many:
`completed` (counts, min, avg, max: live, read with the unfolded deltas) and
`percentilesCompleted` (p50/p95: recomputed by the fold). A poll's receipt time is
used, so each figure includes up to one request's latency.

    .venv/bin/python bench/metrics_freshness.py [--rate 1000] [--seconds 30]

DATABASE_URL: a server to create the bench database on (else an embedded PostgreSQL).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from harness import free_port, serve
from metrics_db import fresh_database, uptime
from sqlalchemy import text

from db.enums import JobStatus, TokenRole
from db.session import Database, connect
from db.uow import UnitOfWork
from domain.auth.rules import Actor
from domain.batches import service as batches
from domain.jobs import moves
from domain.jobs.moves import Move
from domain.jobs.rules import Initiator
from domain.tasktypes import service as tasktypes
from domain.tasktypes.rules import RevisionFields

ADMIN = Actor(token_id=0, owner="bench", role=TokenRole.ADMIN)
POLLED = """query($id: ID!) { batch(id: $id) { nodeMetrics { node completed
  percentilesCompleted } } }"""


class NoDispatch:
    async def send(self, actor_name: str, *args: object, delay_ms: int | None = None) -> None:
        return None

    async def ping(self) -> None:
        return None


@dataclass
class Record:
    commits: list[tuple[float, str, int]] = field(default_factory=list)  # (t, node, completed)
    polls: list[tuple[float, dict[str, tuple[int, int]]]] = field(default_factory=list)
    transitions: int = 0


async def seed(db: Database, args: argparse.Namespace) -> tuple[int, dict[str, list[int]]]:
    from db.enums import CachePolicy

    async with UnitOfWork(db.write_session, dispatcher=NoDispatch()) as uow:
        await tasktypes.create_task_type(
            uow,
            spec=tasktypes.TaskTypeSpec(
                workspace="default",
                name="scan",
                fields=RevisionFields(
                    description="",
                    parameters_schema={"type": "object"},
                    result_schema={"type": "object"},
                    implementation="external",
                    timeout_seconds=None,
                    max_attempts=1,
                    cache_policy=CachePolicy.NONE,
                ),
            ),
            actor=ADMIN,
        )
        created = await batches.create_batch(
            uow,
            spec=batches.BatchSpec(
                workspace="default",
                title="freshness",
                definition={
                    "recipe": {
                        "nodes": [
                            {"name": f"node-{n:02d}", "taskType": "scan"} for n in range(args.nodes)
                        ]
                    },
                    "inputs": [{"i": i} for i in range(args.jobs // args.nodes)],
                },
            ),
            actor=ADMIN,
        )
        await uow.commit()
    assert created.batch is not None
    batch_id = created.batch.id
    cursor: int | None = 0
    while cursor is not None:  # what the fleet's creation actor does, chunk by chunk
        async with UnitOfWork(db.write_session, dispatcher=NoDispatch()) as uow:
            outcome = await batches.create_chunk(uow, batch_id=batch_id, cursor=cursor)
            await uow.commit()
        cursor = outcome.next_cursor
    while True:  # every job QUEUED (dispatch takes 5,000 at a time)
        async with UnitOfWork(db.write_session, dispatcher=NoDispatch()) as uow:
            applied = await moves.dispatch(uow, batch_id=batch_id)
            await uow.commit()
        if not applied.moved:
            break
    async with db.engine.connect() as conn:  # as autovacuum would, after a bulk load
        await conn.execute(text("COMMIT"))
        await conn.execute(text("ANALYZE"))
    async with db.read_session() as s:
        rows = await s.execute(
            text("SELECT node, id FROM job WHERE batch_id = :b AND status = 'QUEUED' ORDER BY id"),
            {"b": batch_id},
        )
        by_node: dict[str, list[int]] = {}
        for node, job_id in rows:
            by_node.setdefault(node, []).append(int(job_id))
    return batch_id, by_node


async def drive(
    db: Database,
    nodes: dict[str, list[int]],
    record: Record,
    *,
    per_second: float,
    group: int,
    until: float,
) -> None:
    """Transactions of ``group`` completions and ``group`` starts, round-robin over this
    driver's nodes, ``per_second`` transactions a second."""
    queues = {n: list(ids) for n, ids in nodes.items()}
    running: dict[str, list[int]] = {n: [] for n in nodes}
    completed = dict.fromkeys(nodes, 0)
    order = list(nodes)
    interval = 1.0 / per_second
    next_at = time.monotonic()
    turn = 0
    while time.monotonic() < until:
        node = order[turn % len(order)]
        turn += 1
        done, running[node] = running[node], []
        starting, queues[node] = queues[node][:group], queues[node][group:]
        batch = [
            Move(
                j,
                JobStatus.COMPLETED,
                Initiator.WORKER,
                worker="bench",
                result={},
                run_seconds=random.uniform(0.5, 5.0),
            )
            for j in done
        ] + [Move(j, JobStatus.RUNNING, Initiator.WORKER, worker="bench") for j in starting]
        if not batch:
            break
        async with UnitOfWork(db.write_session, dispatcher=NoDispatch()) as uow:
            await moves.apply(uow, batch)
            await uow.commit()
        now = time.monotonic()
        record.transitions += len(batch)
        running[node] = starting
        if done:
            completed[node] += len(done)
            record.commits.append((now, node, completed[node]))
        next_at += interval
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))


async def poll(
    base: str, token: str, batch_id: int, record: Record, every: float, until: float
) -> None:
    body = {
        "query": POLLED,
        "variables": {"id": base64.b64encode(f"Batch:{batch_id}".encode()).decode()},
    }
    async with httpx.AsyncClient(
        base_url=base, headers={"authorization": f"Bearer {token}"}, timeout=30
    ) as client:
        while time.monotonic() < until:
            response = await client.post("/graphql", json=body)
            got = time.monotonic()
            nodes = response.json()["data"]["batch"]["nodeMetrics"]
            record.polls.append(
                (got, {n["node"]: (n["completed"], n["percentilesCompleted"]) for n in nodes})
            )
            await asyncio.sleep(every)


def lags(record: Record, which: int) -> list[float]:
    """Per completing transaction: seconds until a poll showed it (``which``: 0 the live
    count, 1 the percentiles)."""
    found: list[float] = []
    start = 0
    for committed, node, count in record.commits:
        while start < len(record.polls) and record.polls[start][0] < committed:
            start += 1
        for t, nodes in record.polls[start:]:
            if nodes[node][which] >= count:
                found.append(t - committed)
                break
    return found


def summary(name: str, values: list[float], expected: int) -> str:
    ordered = sorted(values)
    p99 = ordered[max(0, int(len(ordered) * 0.99) - 1)]
    return (
        f"{name}: p50 {statistics.median(ordered) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms,"
        f" max {ordered[-1] * 1000:.0f} ms ({len(values):,} of {expected:,} completions seen)"
    )


async def measure(url: str, base: str, token: str, args: argparse.Namespace) -> None:
    db = connect(url, pool_size=args.drivers + 2)
    batch_id, by_node = await seed(db, args)
    record = Record()
    names = sorted(by_node)
    share = [names[i :: args.drivers] for i in range(args.drivers)]
    per_driver = args.rate / (2 * args.group) / args.drivers
    async with db.read_session() as s:
        runs_before = int(
            await s.scalar(text("SELECT runs FROM periodic_task WHERE name = 'counters.fold'")) or 0
        )
    started = time.monotonic()
    until = started + args.seconds
    await asyncio.gather(
        poll(base, token, batch_id, record, args.poll, until + 3),
        *[
            drive(
                db,
                {n: by_node[n] for n in mine},
                record,
                per_second=per_driver,
                group=args.group,
                until=until,
            )
            for mine in share
        ],
    )
    elapsed = min(time.monotonic(), until) - started
    async with db.read_session() as s:
        runs = int(
            await s.scalar(text("SELECT runs FROM periodic_task WHERE name = 'counters.fold'")) or 0
        )
    await db.dispose()
    rate = record.transitions / elapsed
    print(
        f"{record.transitions:,} transitions in {elapsed:.1f} s ({rate:,.0f}/s; goal 1,000/s)"
        f" by {args.drivers} drivers, {args.group} completions + {args.group} starts per"
        " transaction;"
        f" {len(record.polls):,} polls of the API;"
        f" {runs - runs_before} folds"
    )
    print(summary("  counts, min/avg/max (live)", lags(record, 0), len(record.commits)))
    print(summary("  p50/p95 (the fold)       ", lags(record, 1), len(record.commits)))
    print(f"uptime: {uptime()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=1000, help="transitions per second")
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--jobs", type=int, default=40_000)
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--drivers", type=int, default=4)
    parser.add_argument(
        "--group", type=int, default=5, help="jobs completed (and started) per transaction"
    )
    parser.add_argument("--poll", type=float, default=0.02, help="seconds between polls")
    args = parser.parse_args()
    with fresh_database("batchgraph_bench_freshness") as url, tempfile.TemporaryDirectory() as home:
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "BATCHGRAPH_HOME": home,
            "BATCHGRAPH_PORT": str(free_port()),
        }
        env.pop("BROKER_URL", None)
        with serve(env, Path(home) / "serve.log", "--no-worker") as (base, token):
            assert token is not None, "the fresh database gave no admin token"
            asyncio.run(measure(url, base, token, args))


if __name__ == "__main__":
    sys.exit(main())
