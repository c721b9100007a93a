"""batchComparison on a long chain (issue 12): server time and SQL statements.

A chain of B batches (default 20), each of N nodes (50) and J jobs (10,000: J / N
recipes of N jobs), generated with SQL — not through the API — in a database of its
own; their node counters come the way transitions leave them (deltas), folded by the
real `counters.fold` statement, which also computes every node's p50/p95 (timed: it is
the worst fold there is, every node of the chain at once). A few hundred deltas are
left unfolded, as a live system has them. Then the whole comparison — every series of
every node, the regressions and improvements — is asked R times (default 30) of the
real app in-process, with a token: time per request (server time: parse, validate,
resolve, serialise), and SQL statements per request (the token's lookup included).

    .venv/bin/python bench/comparison.py [--batches 20] [--nodes 50] [--jobs 10000]

DATABASE_URL: a server to create the bench database on (else an embedded PostgreSQL).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import json
import statistics
import time
from datetime import UTC, datetime

import httpx
from metrics_db import fresh_database, uptime
from sqlalchemy import event, text

from db.enums import CachePolicy, TokenRole
from db.repositories import counters
from db.session import Database, connect
from db.uow import UnitOfWork
from domain.auth import service as auth
from domain.auth.rules import Actor
from domain.tasktypes import service as tasktypes
from domain.tasktypes.rules import RevisionFields
from domain.workspaces import service as workspaces

ADMIN = Actor(token_id=0, owner="bench", role=TokenRole.ADMIN)
QUERY = """query Compare($root: ID!) { batchComparison(rootBatchId: $root) {
  threshold regressionCount improvementCount
  batches { id title description createdAt }
  metrics { metric unit isJudged values iso changes percentChanges isRegression isImprovement }
  nodes { node metrics { metric unit isJudged values iso changes percentChanges isRegression
    isImprovement } }
  regressions(first: 100) { batch { id } previousBatch { id } node metric previous value change
    percentChange }
  improvements(first: 100) { batch { id } node metric previous value percentChange } } }"""

NODE = "'node-' || lpad(n::text, 2, '0')"
GENERATE = [
    # the chain: B batches, each superseding the one before
    """INSERT INTO batch (workspace_id, title, description, recipe, priority, is_superseded,
         superseded_at, is_creation_done, creation_cursor, recipes_estimated, recipes_total,
         created_by, created_at, last_modified_at)
       SELECT :ws, 'Bench chain, run ' || b, '', CAST(:recipe AS jsonb), 0, b < :nb,
              CASE WHEN b < :nb THEN now() END, true, :nr, :nr, :nr, 'bench',
              now() - make_interval(hours => :nb - b), now()
       FROM generate_series(1, :nb) b ORDER BY b""",
    """WITH c AS (SELECT id, lag(id) OVER (ORDER BY id) AS prev, min(id) OVER () AS root
                 FROM batch WHERE workspace_id = :ws)
       UPDATE batch b SET root_batch_id = c.root, superseded_batch_id = c.prev
       FROM c WHERE b.id = c.id""",
    f"""INSERT INTO batch_node (batch_id, node, task_type_revision_id, position, pending, blocked,
         queued, running, completed, failed, canceled, run_seconds_sum, run_seconds_count,
         job_seconds_sum, job_seconds_count, percentiles_completed)
       SELECT b.id, {NODE}, :rev, n, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0
       FROM batch b CROSS JOIN generate_series(0, :nn - 1) n WHERE b.workspace_id = :ws""",
    """INSERT INTO recipe (batch_id, position, item, job_count, jobs_completed)
       SELECT b.id, r, jsonb_build_object('page', r), :nn, 0
       FROM batch b CROSS JOIN generate_series(0, :nr - 1) r WHERE b.workspace_id = :ws""",
    # jobs: ~2 % failed; durations by node (1-7 s), drifting from batch to batch
    f"""INSERT INTO job (workspace_id, batch_id, recipe_id, node, task_type_revision_id,
         parameters, status, priority, attempt, max_attempts, canceled_by_dependency,
         created_at, started_at, completed_at, run_seconds, last_modified_at)
       SELECT :ws, r.batch_id, r.id, {NODE}, :rev, '{{}}',
              CAST(CASE WHEN x.u < 0.02 THEN 'FAILED' ELSE 'COMPLETED' END AS job_status),
              0, 1, 1, false, b.created_at,
              b.created_at + make_interval(secs => x.w),
              b.created_at + make_interval(secs => x.w + x.d),
              CASE WHEN x.u >= 0.02 THEN x.d * 0.9 END, now()
       FROM recipe r JOIN batch b ON b.id = r.batch_id
       CROSS JOIN generate_series(0, :nn - 1) n
       CROSS JOIN LATERAL (
         SELECT random() + 0 * n AS u, random() * 600 + 0 * r.id AS w,
                (1 + n % 7) * (1 + 0.1 * ((b.id + n) % 5)) * (0.8 + 0.4 * random()) AS d) x
       WHERE b.workspace_id = :ws""",
    """UPDATE recipe r SET jobs_completed = c.n
       FROM (SELECT recipe_id, count(*) AS n FROM job
             WHERE workspace_id = :ws AND status = 'COMPLETED' GROUP BY recipe_id) c
       WHERE r.id = c.recipe_id""",
    # the deltas their transitions would have appended (creation, then the outcomes)
    """INSERT INTO batch_node_delta (batch_id, node, completed, failed,
         run_seconds_min, run_seconds_max, run_seconds_sum, run_seconds_count,
         job_seconds_min, job_seconds_max, job_seconds_sum, job_seconds_count)
       SELECT batch_id, node, count(*) FILTER (WHERE status = 'COMPLETED'),
              count(*) FILTER (WHERE status = 'FAILED'),
              min(run_seconds), max(run_seconds), coalesce(sum(run_seconds), 0),
              count(run_seconds),
              min(d) FILTER (WHERE ok), max(d) FILTER (WHERE ok),
              coalesce(sum(d) FILTER (WHERE ok), 0), count(d) FILTER (WHERE ok)
       FROM (SELECT *, status = 'COMPLETED' AS ok,
                    extract(epoch FROM completed_at - started_at) AS d
             FROM job WHERE workspace_id = :ws) j
       GROUP BY batch_id, node""",
]
# What a live system has unfolded at any moment: a few hundred recent transitions.
UNFOLDED = f"""INSERT INTO batch_node_delta (batch_id, node, running, queued)
  SELECT (SELECT max(id) FROM batch WHERE workspace_id = :ws), {NODE}, 1, -1
  FROM generate_series(0, :unfolded - 1) i CROSS JOIN LATERAL (SELECT i % :nn AS n) x"""


class NoDispatch:
    async def send(self, actor_name: str, *args: object, delay_ms: int | None = None) -> None:
        return None

    async def ping(self) -> None:
        return None


async def seed(db: Database, args: argparse.Namespace) -> tuple[int, str, dict[str, float]]:
    async with UnitOfWork(db.write_session) as uow:
        ws = await workspaces.create_workspace(uow, name="bench", public=True, actor=ADMIN)
        task_type = await tasktypes.create_task_type(
            uow,
            spec=tasktypes.TaskTypeSpec(
                workspace="bench",
                name="render",
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
        created = await auth.create_token(
            uow,
            owner="bench reader",
            role=TokenRole.READER,
            expires_at=None,
            now=datetime.now(UTC),
            actor=ADMIN,
        )
        await uow.commit()
    async with db.read_session() as s:
        revision = await s.scalar(
            text("SELECT id FROM task_type_revision WHERE task_type_id = :t"), {"t": task_type.id}
        )
    recipe = {"nodes": [{"name": f"node-{n:02d}", "taskType": "render"} for n in range(args.nodes)]}
    params = {
        "ws": ws.id,
        "rev": revision,
        "nb": args.batches,
        "nn": args.nodes,
        "nr": args.jobs // args.nodes,
        "recipe": json.dumps(recipe),
        "unfolded": args.unfolded,
    }
    timings: dict[str, float] = {}
    started = time.perf_counter()
    async with db.write_session() as s:
        for statement in GENERATE:
            await s.execute(text(statement), params)
        await s.commit()
    timings["generate"] = time.perf_counter() - started
    async with db.engine.connect() as conn:
        await conn.execute(text("COMMIT"))
        await conn.execute(text("ANALYZE"))
    started = time.perf_counter()
    async with db.write_session() as s:
        folded = await counters.fold(s)
        await s.commit()
    timings["fold"] = time.perf_counter() - started
    timings["folded_nodes"] = folded.recomputed
    async with db.write_session() as s:
        await s.execute(text(UNFOLDED), params)
        await s.commit()
    async with db.read_session() as s:
        root = await s.scalar(text("SELECT min(id) FROM batch WHERE workspace_id = :ws"), params)
        timings["jobs"] = float(
            await s.scalar(text("SELECT count(*) FROM job WHERE workspace_id = :ws"), params) or 0
        )
    return int(root or 0), created.secret, timings


async def measure(url: str, args: argparse.Namespace) -> None:
    from graphql_api.app import create_app, settle_garbage_collector
    from graphql_api.settings import ApiSettings

    db = connect(url)
    root, token, timings = await seed(db, args)
    print(
        f"chain: {args.batches} batches × {args.nodes} nodes, {int(timings['jobs']):,} jobs"
        f" ({args.jobs:,} per batch); generated with SQL in {timings['generate']:.1f} s"
    )
    print(
        f"fold of every node of the chain at once (deltas + p50/p95 of"
        f" {int(timings['folded_nodes']):,} nodes, one statement): {timings['fold'] * 1000:.0f} ms"
    )
    statements: list[str] = []
    event.listen(
        db.engine.sync_engine,
        "before_cursor_execute",
        lambda conn, cursor, statement, *a: statements.append(statement),
    )
    app = create_app(
        settings=ApiSettings(periodic=False, rate_limit_enabled=False),
        db=db,
        dispatcher=NoDispatch(),
    )
    root_id = base64.b64encode(f"Batch:{root}".encode()).decode()
    body = {"query": QUERY, "variables": {"root": root_id}}
    headers = {"authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://bench"
    ) as client:
        for label in ("the interpreter's default", "as the API process settles it"):
            if label.startswith("as the API"):
                settle_garbage_collector()  # what an API process does once started
            full = gc.get_stats()[2]["collections"]
            times: list[float] = []
            counts: list[int] = []
            size = 0
            for n in range(args.rounds + 3):
                statements.clear()
                started = time.perf_counter()
                response = await client.post("/graphql", json=body, headers=headers)
                elapsed = time.perf_counter() - started
                found = response.json()
                assert "errors" not in found, found
                comparison = found["data"]["batchComparison"]
                assert len(comparison["batches"]) == args.batches
                assert len(comparison["nodes"]) == args.nodes
                if n >= 3:  # the first ones warm caches (parser, validation, plans)
                    times.append(elapsed)
                    counts.append(len(statements))
                    size = len(response.content)
            full = gc.get_stats()[2]["collections"] - full
            times_ms = sorted(t * 1000 for t in times)
            p95 = times_ms[max(0, int(len(times_ms) * 0.95) - 1)]
            print(
                f"batchComparison, the whole comparison ({size / 1024:.0f} kB), {len(times)}"
                f" requests, garbage collector {label}: p50 {statistics.median(times_ms):.1f} ms,"
                f" p95 {p95:.1f} ms, max {times_ms[-1]:.1f} ms (goal ≤ 200 ms);"
                f" {full} full collections"
            )
            print(
                f"  SQL statements per request: {min(counts)}–{max(counts)} (goal ≤ 3; the"
                " token's lookup included)"
            )
        if args.profile:
            import cProfile
            import pstats

            profiler = cProfile.Profile()
            profiler.enable()
            await client.post("/graphql", json=body, headers=headers)
            profiler.disable()
            pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    await db.dispose()
    flagged = (comparison["regressionCount"], comparison["improvementCount"])
    print(f"regressions {flagged[0]}, improvements {flagged[1]} (random durations)")
    print(f"uptime: {uptime()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--nodes", type=int, default=50)
    parser.add_argument("--jobs", type=int, default=10_000, help="jobs per batch")
    parser.add_argument("--unfolded", type=int, default=500, help="deltas left unfolded")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--profile", action="store_true", help="profile one request (cProfile)")
    args = parser.parse_args()
    with fresh_database("batchgraph_bench_comparison") as url:
        asyncio.run(measure(url, args))


if __name__ == "__main__":
    main()
