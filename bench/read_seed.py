"""The read bench's database: recreated, migrated, filled in bulk with SQL (one public
workspace, one task type, BATCHES batches of JOBS jobs with 3 events each), an admin
token; and the raw baseline (asyncpg + json.dumps) for the nested dashboard."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import asyncpg

JOBS = 40

SEED = """
INSERT INTO workspace (name, public) VALUES ('bench', true);
INSERT INTO task_type (workspace_id, name, available, check_in_timeout_seconds, latest_revision)
  SELECT id, 'resize', true, 30, 1 FROM workspace WHERE name = 'bench';
INSERT INTO task_type_revision (task_type_id, revision, description, parameters_schema,
    result_schema, implementation, max_attempts, cache_policy, created_by)
  SELECT id, 1, '', '{"type": "object"}', '{"type": "object"}', 'external', 1, 'NONE', 'bench'
  FROM task_type;
INSERT INTO batch (workspace_id, title, description, recipe, priority, is_superseded,
    is_creation_done, creation_cursor, recipes_estimated, recipes_total, created_by, created_at,
    last_modified_at)
  SELECT w.id, 'batch ' || g, '', '{"nodes": [{"name": "resize", "taskType": "resize"}]}',
    0, false, true, $2, $2, $2, 'bench', now() - ($1 - g) * interval '1 minute', now()
  FROM generate_series(1, $1) g, workspace w WHERE w.name = 'bench';
UPDATE batch SET root_batch_id = id;
INSERT INTO batch_node (batch_id, node, task_type_revision_id, position, pending, blocked,
    queued, running, completed, failed, canceled, run_seconds_sum, run_seconds_count,
    job_seconds_sum, job_seconds_count)
  SELECT b.id, 'resize', r.id, 0, 0, 0, 0, $2, 0, 0, 0, 0, 0, 0, 0
  FROM batch b, task_type_revision r;
INSERT INTO recipe (batch_id, position, item, job_count, jobs_completed)
  SELECT b.id, g, jsonb_build_object('url', 'https://img.example/' || b.id || '/' || g), 1, 0
  FROM batch b, generate_series(0, $2 - 1) g ORDER BY b.id, g;
INSERT INTO job (workspace_id, batch_id, recipe_id, node, task_type_revision_id, parameters,
    status, priority, attempt, max_attempts, canceled_by_dependency, created_at, queued_at,
    started_at, last_modified_at)
  SELECT b.workspace_id, b.id, r.id, 'resize', rv.id, r.item, 'RUNNING', 0, 1, 1, false,
    b.created_at, b.created_at, b.created_at + interval '1 second', now()
  FROM recipe r JOIN batch b ON b.id = r.batch_id, task_type_revision rv ORDER BY r.id;
INSERT INTO job_event (job_id, batch_id, from_status, to_status, attempt, at)
  SELECT j.id, j.batch_id, s.f::job_status, s.t::job_status, 1, j.created_at + s.k * interval '1 s'
  FROM job j, (VALUES (0, NULL, 'PENDING'), (1, 'PENDING', 'QUEUED'), (2, 'QUEUED', 'RUNNING'))
    AS s(k, f, t)
  ORDER BY j.id, s.k;
ANALYZE;
"""


def _plain(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def prepare_database(url: str, *, batches: int) -> tuple[str, str]:
    """(an admin token's secret, a description of the data)."""
    import asyncio

    from db.enums import TokenRole
    from db.session import connect
    from db.uow import UnitOfWork
    from domain.auth import service as auth
    from domain.auth.rules import Actor
    from launcher.runtime import migrate

    base, _, name = _plain(url).rpartition("/")
    admin = await asyncpg.connect(f"{base}/postgres")
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    await asyncio.to_thread(migrate, url)
    conn = await asyncpg.connect(_plain(url))
    try:
        sql = SEED.replace("$1", str(int(batches))).replace("$2", str(JOBS))
        await conn.execute(sql)
        counts = {
            t: await conn.fetchval(f"SELECT count(*) FROM {t}")  # fixed table names
            for t in ("batch", "job", "job_event")
        }
    finally:
        await conn.close()
    db = connect(url)
    operator = Actor(token_id=0, owner="bench", role=TokenRole.ADMIN)
    async with UnitOfWork(db.write_session) as uow:
        created = await auth.create_token(
            uow,
            owner="bench",
            role=TokenRole.ADMIN,
            expires_at=None,
            now=datetime.now(UTC),
            actor=operator,
        )
        await uow.commit()
    await db.dispose()
    size = (
        f"{counts['batch']:,} batches, {counts['job']:,} jobs, {counts['job_event']:,} job events"
        " (one public workspace; PostgreSQL on the same machine)"
    )
    return created.secret, size


def _gid(kind: str, pk: int) -> str:
    return base64.b64encode(f"{kind}:{pk}".encode()).decode()


async def raw_nested(conn: asyncpg.Connection) -> dict[str, Any]:
    """The nested dashboard's rows in three statements, shaped as batchgraph answers."""
    batches = await conn.fetch("SELECT id, title, created_at FROM batch ORDER BY id LIMIT 20")
    ids = [b["id"] for b in batches]
    jobs = await conn.fetch(
        """SELECT * FROM (SELECT j.id, j.batch_id, j.status::text AS status, j.node, t.name,
             row_number() OVER (PARTITION BY j.batch_id ORDER BY j.id) AS n
           FROM job j JOIN task_type_revision r ON r.id = j.task_type_revision_id
           JOIN task_type t ON t.id = r.task_type_id WHERE j.batch_id = ANY($1)) x
           WHERE n <= 10 ORDER BY batch_id, id""",
        ids,
    )
    events = await conn.fetch(
        """SELECT * FROM (SELECT e.id, e.job_id, e.from_status::text AS f, e.to_status::text AS t,
             e.at, row_number() OVER (PARTITION BY e.job_id ORDER BY e.id) AS n
           FROM job_event e WHERE e.job_id = ANY($1)) x WHERE n <= 5 ORDER BY job_id, id""",
        [j["id"] for j in jobs],
    )
    by_job: dict[int, list[dict[str, Any]]] = {}
    for e in events:
        by_job.setdefault(e["job_id"], []).append(
            {
                "node": {
                    "eventId": e["id"],
                    "fromStatus": e["f"],
                    "toStatus": e["t"],
                    "at": e["at"].astimezone(UTC).isoformat(),
                }
            }
        )
    by_batch: dict[int, list[dict[str, Any]]] = {}
    for j in jobs:
        by_batch.setdefault(j["batch_id"], []).append(
            {
                "node": {
                    "id": _gid("Job", j["id"]),
                    "status": j["status"],
                    "node": j["node"],
                    "taskType": {"name": j["name"]},
                    "events": {"edges": by_job.get(j["id"], [])},
                }
            }
        )
    edges = [
        {
            "node": {
                "id": _gid("Batch", b["id"]),
                "title": b["title"],
                "createdAt": b["created_at"].astimezone(UTC).isoformat(),
                "jobs": {"edges": by_batch.get(b["id"], [])},
            }
        }
        for b in batches
    ]
    return {"data": {"batches": {"edges": edges}}}
