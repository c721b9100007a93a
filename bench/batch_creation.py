"""createBatch with N input items on a one-node recipe: time until isCreationDone.

Starts embedded PostgreSQL and Redis (unless DATABASE_URL / BROKER_URL are set) and a
real `batchgraph serve` with its worker, creates the batch over HTTP and polls until
the worker has created every recipe and job. The baseline, measured in the same run
on the same database: inserting the same rows (recipes, jobs, job events) with one
bulk INSERT per 1,000 rows. Then the SQL statements of the nested query
`batches(first: B) { jobs(first: J) { taskType events(first: 5) } }` at two sizes.

    .venv/bin/python bench/batch_creation.py [--items 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from harness import free_port
from sqlalchemy import event, text

from db.config import load_settings
from db.session import connect
from launcher.runtime import infrastructure, migrate

QUERY = """query($b: Int, $j: Int) { batches(first: $b) { edges { node { title
  jobs(first: $j) { edges { node { status taskType { name }
  events(first: 5) { edges { node { eventId toStatus } } } } } } } } } }"""


def gql(
    client: httpx.Client, token: str, query: str, variables: dict[str, Any] | None = None
) -> dict[str, Any]:
    response = client.post(
        "/graphql",
        json={"query": query, "variables": variables or {}},
        headers={"authorization": f"Bearer {token}"},
    )
    body = response.json()
    if "errors" in body:
        raise RuntimeError(body["errors"])
    return body["data"]  # type: ignore[no-any-return]


async def baseline(url: str, items: int) -> float:
    """The same rows as the batch's creation, one INSERT per 1,000 rows per table."""
    db = connect(url, pool_size=1, max_overflow=0)
    try:
        async with db.engine.begin() as conn:
            ids = (
                await conn.execute(
                    text(
                        "SELECT b.id, b.workspace_id, n.task_type_revision_id FROM batch b "
                        "JOIN batch_node n ON n.batch_id = b.id ORDER BY b.id LIMIT 1"
                    )
                )
            ).one()
            batch_id, workspace_id, revision_id = ids
            started = time.perf_counter()
            for lo in range(0, items, 1000):
                hi = min(lo + 1000, items)
                await conn.execute(
                    text(
                        "INSERT INTO recipe (batch_id, position, item, job_count, jobs_completed) "
                        "SELECT :b, 1000000 + g,"
                        " jsonb_build_object('url', 'u' || g, 'width', 1), 1, 0"
                        " FROM generate_series(:lo, :hi - 1) g"
                    ),
                    {"b": batch_id, "lo": lo, "hi": hi},
                )
                await conn.execute(
                    text(
                        "INSERT INTO job (workspace_id, batch_id, recipe_id, node, "
                        "task_type_revision_id, parameters, status, priority, attempt,"
                        " max_attempts, canceled_by_dependency)"
                        " SELECT :w, :b, r.id, 'resize', :rev, r.item, "
                        "'PENDING', 0, 1, 1, false FROM recipe r WHERE r.batch_id = :b AND "
                        "r.position BETWEEN 1000000 + :lo AND 1000000 + :hi - 1"
                    ),
                    {"w": workspace_id, "b": batch_id, "rev": revision_id, "lo": lo, "hi": hi},
                )
                await conn.execute(
                    text(
                        "INSERT INTO job_event (job_id, batch_id, to_status, attempt, reason) "
                        "SELECT j.id, :b, 'PENDING', 1, 'created' FROM job j JOIN recipe r ON "
                        "r.id = j.recipe_id WHERE r.batch_id = :b AND r.position BETWEEN "
                        "1000000 + :lo AND 1000000 + :hi - 1"
                    ),
                    {"b": batch_id, "lo": lo, "hi": hi},
                )
            elapsed = time.perf_counter() - started
            await conn.rollback()
        return elapsed
    finally:
        await db.dispose()


def count_statements(url: str, base: str, token: str) -> list[tuple[str, int]]:
    """Statements per request for the nested query, from the server's point of view:
    measured in-process against the same database."""
    from graphql_api.app import create_app
    from graphql_api.settings import ApiSettings
    from jobs.broker import build_broker
    from jobs.dispatch import DramatiqDispatcher

    async def run() -> list[tuple[str, int]]:
        db = connect(url)
        seen: list[str] = []
        event.listen(db.engine.sync_engine, "before_cursor_execute", lambda *a: seen.append(a[2]))
        app = create_app(
            settings=ApiSettings(),
            db=db,
            dispatcher=DramatiqDispatcher(build_broker("redis://127.0.0.1:1/0")),
        )
        found = []
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://bench"
        ) as c:
            h = {"authorization": f"Bearer {token}"}
            await c.post("/graphql", json={"query": "{ viewer { owner } }"}, headers=h)
            for b, j in ((1, 1), (50, 20)):
                seen.clear()
                r = await c.post(
                    "/graphql", json={"query": QUERY, "variables": {"b": b, "j": j}}, headers=h
                )
                assert "errors" not in r.json(), r.text
                found.append((f"batches(first: {b}) x jobs(first: {j})", len(seen)))
        await db.dispose()
        return found

    return asyncio.run(run())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bg-bench-batch-") as home:
        config = load_settings().model_copy(update={"home": Path(home)})
        with infrastructure(config) as infra:
            migrate(infra.database_url)
            port = free_port()
            env = {
                **os.environ,
                **infra.environment(),
                "BATCHGRAPH_PORT": str(port),
                "BATCHGRAPH_HOME": home,
            }
            log = Path(home) / "serve.log"
            with log.open("wb") as out:
                server = subprocess.Popen(
                    [sys.executable, "-m", "launcher", "serve", "--no-migrate"],
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            try:
                return run(infra.database_url, f"http://127.0.0.1:{port}", log, args.items, server)
            finally:
                server.send_signal(signal.SIGINT)
                try:
                    server.wait(30)
                except subprocess.TimeoutExpired:
                    server.kill()


def run(url: str, base: str, log: Path, items: int, server: subprocess.Popen[bytes]) -> int:
    with httpx.Client(base_url=base, timeout=120) as client:
        deadline = time.monotonic() + 60
        while True:
            try:
                if client.get("/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                print(log.read_text(), file=sys.stderr)
                return 1
            time.sleep(0.2)
        token = next(w for w in log.read_text().split() if w.startswith("bg_"))
        gql(
            client,
            token,
            """mutation { createTaskType(input: {name: "resize",
            parametersSchema: {type: "object"}}) { __typename } }""",
        )
        definition = {
            "recipe": {"nodes": [{"name": "resize", "taskType": "resize"}]},
            "inputs": [{"url": f"u{i}", "width": 1} for i in range(items)],
        }
        started = time.perf_counter()
        created = gql(
            client,
            token,
            """mutation($d: JSON!) { createBatch(input: {
            title: "bench", definition: $d}) { __typename ... on BatchCreated { batch { id } }
            ... on InvalidBatch { validation { errors { name description } } } } }""",
            {"d": definition},
        )["createBatch"]
        accepted = time.perf_counter() - started
        batch_id = created["batch"]["id"]
        while True:
            state = gql(
                client,
                token,
                """query($id: ID!) { batch(id: $id) { isCreationDone
                counters { jobsTotal recipesTotal } } }""",
                {"id": batch_id},
            )["batch"]
            if state["isCreationDone"]:
                break
            if time.perf_counter() - started > 600:
                print("not done after 600 s", file=sys.stderr)
                return 1
            time.sleep(0.05)
        done = time.perf_counter() - started
        assert state["counters"] == {"jobsTotal": items, "recipesTotal": items}, state
        bulk = asyncio.run(baseline(url, items))
        print(f"createBatch with {items} items, one-node recipe (server + 1 worker, loopback)")
        print(f"  accepted (validated, stored, HTTP answer): {accepted:6.2f} s")
        print(f"  until isCreationDone (recipes, jobs, events): {done:6.2f} s")
        print(f"  baseline: same rows, bulk INSERT per 1,000: {bulk:6.2f} s")
        print(f"  ratio createBatch / baseline: {done / bulk:6.1f}x")
        for label, n in count_statements(url, base, token):
            print(f"  SQL statements, {label}: {n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
