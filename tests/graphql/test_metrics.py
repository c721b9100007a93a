"""Per-node batch metrics (issue 12): counts by status, failure rate, and min / avg / max /
p50 / p95 of the run duration (the implementation's own time) and the job duration
(completed − started), kept through the one path and refreshed by the counters fold."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import asyncpg
import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import make_url

from db.config import asyncpg_url
from db.enums import JobStatus, TokenRole
from db.events import METRICS
from db.models import Job
from db.repositories import counters
from db.session import Database
from db.uow import UnitOfWork
from domain.jobs import moves
from domain.jobs.moves import Move
from domain.jobs.rules import Initiator
from tests.conftest import row_counts
from tests.factories import (
    fold_counters,
    make_batch,
    make_task_type,
    make_token,
    move_job,
    two_node_definition,
)
from tests.graphql.conftest import Api
from tests.graphql.test_pull_workers import CLAIM, enabled_worker

S = JobStatus
W = Initiator.WORKER

NODE_METRICS = """query($id: ID!) { batch(id: $id) {
  counters { jobsTotal pending blocked queued running completed failed canceled
    recipesTotal recipesCompleted }
  nodeMetrics { node jobsTotal pending blocked queued running completed failed canceled
    failureRate percentilesCompleted percentilesAsOf
    runDuration { count min { seconds iso } avg { seconds iso } max { seconds iso }
      p50 { seconds iso } p95 { seconds iso } }
    jobDuration { count min { iso } avg { iso } max { iso } p50 { iso } p95 { iso } } }
  metrics { node completed } } }"""
COMPLETE = """mutation($job: ID!, $run: Float) {
  completeJob(job: $job, result: {}, runSeconds: $run) { __typename
    ... on JobFinished { job { status } }
    ... on ValidationFailed { code violations { path message } } } }"""


def gid(kind: str, pk: int) -> str:
    return base64.b64encode(f"{kind}:{pk}".encode()).decode()


def db_id(global_id: str) -> int:
    return int(base64.b64decode(global_id).decode().split(":")[1])


def one_node(task_type: str, n: int, node: str = "resize") -> dict[str, Any]:
    return {
        "recipe": {"nodes": [{"name": node, "taskType": task_type}]},
        "inputs": [{"i": i} for i in range(n)],
    }


async def job_ids(db: Database, batch_id: int) -> list[int]:
    async with db.read_session() as s:
        return list(
            await s.scalars(select(Job.id).where(Job.batch_id == batch_id).order_by(Job.id))
        )


async def started_ago(db: Database, job_id: int, seconds: float) -> None:
    """The job started this long ago (a test's clock: completions are measured from it)."""
    async with db.write_session() as s:
        await s.execute(
            text("UPDATE job SET started_at = now() - make_interval(secs => :s) WHERE id = :id"),
            {"s": seconds, "id": job_id},
        )
        await s.commit()


async def complete_timed(
    db: Database, job_id: int, *, job_seconds: float, run_seconds: float | None = None
) -> None:
    """RUNNING → COMPLETED through the one path, with exact durations: the job started
    ``job_seconds`` before the completing transaction's clock."""
    async with UnitOfWork(db.write_session) as uow:
        await uow.session.execute(
            text("UPDATE job SET started_at = now() - make_interval(secs => :s) WHERE id = :id"),
            {"s": job_seconds, "id": job_id},
        )
        await moves.apply(
            uow,
            [Move(job_id, S.COMPLETED, W, worker="w", result={}, run_seconds=run_seconds)],
        )
        await uow.commit()


async def node(api: Api, batch_id: int, token: str, name: str) -> dict[str, Any]:
    found = (await api.data(NODE_METRICS, {"id": gid("Batch", batch_id)}, token=token))["batch"]
    return next(n for n in found["nodeMetrics"] if n["node"] == name)


async def test_the_worked_example_two_three_and_seven_minutes_and_an_untimed_job(
    api: Api, db: Database
) -> None:
    """Pull workers report run times of 2, 3 and 7 minutes; a fourth job completes without
    timestamps (its RUNNING report never came) and is left out of the durations."""
    await make_task_type(db, "scan")
    _, admin = await make_token(db, role=TokenRole.ADMIN)
    _, token = await enabled_worker(api, admin, "scanner.example", c=10)
    batch = await make_batch(db, one_node("scan", 4))
    for run in (120.0, 180.0, 420.0):
        claimed = (await api.data(CLAIM, {"types": ["scan"]}, token=token))["claimJob"]["job"]
        await started_ago(db, db_id(claimed["id"]), 600)  # it ran for ten minutes in all
        done = await api.data(COMPLETE, {"job": claimed["id"], "run": run}, token=token)
        assert done["completeJob"] == {"__typename": "JobFinished", "job": {"status": "COMPLETED"}}
    [untimed] = [i for i in await job_ids(db, batch.id) if await _status(db, i) is S.QUEUED]
    async with UnitOfWork(db.write_session) as uow:  # QUEUED → COMPLETED: never started
        await move_job(uow, untimed, S.COMPLETED, W)
        await uow.commit()

    live = await node(api, batch.id, admin, "resize")
    run = live["runDuration"]
    assert (run["count"], run["min"]["iso"], run["avg"]["iso"], run["max"]["iso"]) == (
        3,
        "PT2M0S",
        "PT4M0S",
        "PT7M0S",
    )
    assert run["min"]["seconds"] == 120.0
    # p50/p95 come with the next fold; until then they are null, and say so.
    assert (run["p50"], run["p95"], live["percentilesCompleted"]) == (None, None, 0)
    assert live["jobDuration"]["count"] == 3  # the untimed job has no job duration either
    assert live["completed"] == 4

    await fold_counters(db)
    folded = await node(api, batch.id, admin, "resize")
    assert folded["runDuration"]["p50"] == {"seconds": 180.0, "iso": "PT3M0S"}
    assert folded["runDuration"]["p95"]["iso"] == "PT6M36S"  # 3 + 0.9 × (7 − 3) minutes
    assert folded["percentilesCompleted"] == 4
    assert folded["percentilesAsOf"] is not None
    assert folded["jobDuration"]["min"]["iso"].startswith("PT10M0")  # completed − started
    assert folded["failureRate"] == 0.0
    # Unchanged by the fold: min/avg/max were live already.
    assert folded["runDuration"]["avg"] == live["runDuration"]["avg"]


async def _status(db: Database, job_id: int) -> JobStatus:
    async with db.read_session() as s:
        found = await s.scalar(select(Job.status).where(Job.id == job_id))
    assert found is not None
    return found


async def test_a_reported_run_time_is_checked_and_capped(api: Api, db: Database) -> None:
    await make_task_type(db, "scan")
    _, admin = await make_token(db, role=TokenRole.ADMIN)
    _, token = await enabled_worker(api, admin, "scanner.example", c=10)
    await make_batch(db, one_node("scan", 3))

    claimed = (await api.data(CLAIM, {"types": ["scan"]}, token=token))["claimJob"]["job"]
    before = await row_counts(db)
    refused = await api.data(COMPLETE, {"job": claimed["id"], "run": -1.0}, token=token)
    assert refused["completeJob"] == {
        "__typename": "ValidationFailed",
        "code": "VALIDATION_FAILED",
        "violations": [{"path": "$.runSeconds", "message": "must be a number of seconds >= 0"}],
    }
    assert await row_counts(db) == before
    assert await _status(db, db_id(claimed["id"])) is S.RUNNING  # nothing changed

    # More than the job's own time is capped at it; none reported: completed − started.
    await started_ago(db, db_id(claimed["id"]), 30)
    await api.data(COMPLETE, {"job": claimed["id"], "run": 3600.0}, token=token)
    second = (await api.data(CLAIM, {"types": ["scan"]}, token=token))["claimJob"]["job"]
    await started_ago(db, db_id(second["id"]), 20)
    await api.data(COMPLETE, {"job": second["id"]}, token=token)
    async with db.read_session() as s:
        found = await s.execute(select(Job.id, Job.run_seconds).where(Job.run_seconds.is_not(None)))
        rows = {job_id: seconds for job_id, seconds in found}
    assert 30 <= rows[db_id(claimed["id"])] < 40
    assert 20 <= rows[db_id(second["id"])] < 30
    # A job shows its durations as the metrics count them.
    job = (
        await api.data(
            """query($id: ID!) { job(id: $id) { runDuration { seconds } jobDuration { seconds }
            totalDuration { seconds } } }""",
            {"id": claimed["id"]},
            token=admin,
        )
    )["job"]
    assert job["runDuration"]["seconds"] == rows[db_id(claimed["id"])]
    assert job["jobDuration"]["seconds"] >= 30
    assert job["totalDuration"]["seconds"] >= 0


async def test_counters_over_mixed_states(api: Api, db: Database) -> None:
    """Scale's worked example: one batch whose jobs sit in every state, counted per node
    and for the batch — the same before and after the fold."""
    await make_task_type(db, "resize")
    await make_task_type(db, "thumb")
    _, admin = await make_token(db, role=TokenRole.READER)
    batch = await make_batch(db, two_node_definition([{"url": f"u{i}"} for i in range(5)]))
    resize = [i for i in await job_ids(db, batch.id) if await _status(db, i) is S.QUEUED]
    assert len(resize) == 5
    one, two, three, _four, five = resize
    async with UnitOfWork(db.write_session) as uow:
        await move_job(uow, one, S.RUNNING, W)
        await move_job(uow, two, S.RUNNING, W)
        await move_job(uow, three, S.RUNNING, W)
        await uow.commit()
    await complete_timed(db, one, job_seconds=10, run_seconds=8)  # thumb 1: PENDING → QUEUED
    async with UnitOfWork(db.write_session) as uow:
        await move_job(uow, two, S.FAILED, W)  # thumb 2: canceled with it
        await move_job(uow, five, S.CANCELED, Initiator.USER, worker=None)  # thumb 5 too
        await uow.commit()
    expected_counts = {
        "resize": dict(pending=0, blocked=0, queued=1, running=1, completed=1, failed=1),
        "thumb": dict(pending=0, blocked=2, queued=1, running=0, completed=0, failed=0),
    }
    for fold in (False, True):
        if fold:
            await fold_counters(db)
        found = (await api.data(NODE_METRICS, {"id": gid("Batch", batch.id)}, token=admin))["batch"]
        assert found["counters"] == {
            "jobsTotal": 10,
            "pending": 0,
            "blocked": 2,
            "queued": 2,
            "running": 1,
            "completed": 1,
            "failed": 1,
            "canceled": 3,
            "recipesTotal": 5,
            "recipesCompleted": 0,
        }
        by_node = {n["node"]: n for n in found["nodeMetrics"]}
        for name, counts in expected_counts.items():
            assert {k: by_node[name][k] for k in counts} == counts
        assert (by_node["resize"]["canceled"], by_node["thumb"]["canceled"]) == (1, 2)
        assert (by_node["resize"]["jobsTotal"], by_node["thumb"]["jobsTotal"]) == (5, 5)
        assert by_node["resize"]["failureRate"] == 0.5
        assert by_node["thumb"]["failureRate"] is None  # nothing ended
        assert by_node["resize"]["runDuration"]["avg"]["iso"] == "PT8S"
        assert by_node["resize"]["jobDuration"]["avg"]["iso"] == "PT10S"
        assert by_node["thumb"]["runDuration"]["count"] == 0
        assert by_node["resize"]["runDuration"]["p50"] == (
            {"seconds": 8.0, "iso": "PT8S"} if fold else None
        )
        # The deprecated name still answers the same.
        assert [m["node"] for m in found["metrics"]] == ["resize", "thumb"]


async def test_a_batch_with_no_jobs_shows_zeros_and_no_durations(api: Api, db: Database) -> None:
    await make_task_type(db, "scan")
    _, admin = await make_token(db, role=TokenRole.READER)
    batch = await make_batch(db, one_node("scan", 3), finish_creation=False)
    await fold_counters(db)
    found = await node(api, batch.id, admin, "resize")
    assert found["jobsTotal"] == found["completed"] == found["percentilesCompleted"] == 0
    assert found["failureRate"] is None
    for duration in (found["runDuration"], found["jobDuration"]):
        assert duration["count"] == 0
        assert {k: v for k, v in duration.items() if k != "count"} == dict.fromkeys(
            ("min", "avg", "max", "p50", "p95")
        )


async def test_many_completions_cost_one_recomputation_per_node_in_one_statement(
    db: Database, sql_counter: Any
) -> None:
    """However many transitions happened since the last fold, a node's percentiles are
    recomputed once, by the one fold statement; jobs' transactions never touch the node
    row; moves that complete nothing recompute nothing."""
    await make_task_type(db, "scan")
    batch = await make_batch(db, one_node("scan", 30))
    ids = await job_ids(db, batch.id)
    await fold_counters(db)
    async with UnitOfWork(db.write_session) as uow:
        for job_id in ids:
            await move_job(uow, job_id, S.RUNNING, W)
        await uow.commit()
    async with db.write_session() as s:
        quiet = await counters.fold(s)
        await s.commit()
    assert (quiet.nodes, quiet.recomputed) == (1, 0)  # counts moved; no completion
    for n, job_id in enumerate(ids):  # thirty transactions, one completion each
        await complete_timed(db, job_id, job_seconds=n + 1, run_seconds=n + 1)
    sql_counter.statements.clear()
    async with db.write_session() as s:
        folded = await counters.fold(s)
        await s.commit()
    assert (folded.nodes, folded.recomputed) == (1, 1)
    assert [q for q in sql_counter.statements if "batch_node" in q] == [sql_counter.statements[0]]
    async with db.read_session() as s:
        [[row]] = await counters.nodes(s, [batch.id])
    assert (row.run_seconds_p50, row.percentiles_completed) == (15.5, 30)
    assert row.run_seconds_p95 == pytest.approx(28.55)


async def test_the_fold_announces_recomputed_metrics_at_commit(
    db: Database, database_url: str
) -> None:
    await make_task_type(db, "scan")
    batch = await make_batch(db, one_node("scan", 2))
    first, second = await job_ids(db, batch.id)
    async with UnitOfWork(db.write_session) as uow:
        await move_job(uow, first, S.RUNNING, W)
        await uow.commit()
    await complete_timed(db, first, job_seconds=2)
    url = make_url(asyncpg_url(database_url))
    listener = await asyncpg.connect(
        user=url.username,
        password=url.password,
        host=url.query.get("host") or url.host,
        port=url.port,
        database=url.database,
    )
    heard: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await listener.add_listener(METRICS, lambda *a: heard.put_nowait(json.loads(a[3])))
    try:
        async with db.write_session() as s:
            await counters.fold(s)
            await asyncio.sleep(0.1)
            assert heard.empty()  # not before the commit
            await s.commit()
        assert await asyncio.wait_for(heard.get(), 5) == {"batches": [batch.id]}
        async with UnitOfWork(db.write_session) as uow:
            await move_job(uow, second, S.RUNNING, W)  # no completion: no announcement
            await uow.commit()
        await fold_counters(db)
        await asyncio.sleep(0.2)
        assert heard.empty()
    finally:
        await listener.close()


async def test_the_compiled_read_path_answers_the_metrics_as_the_resolvers_do(
    api: Api, resolver_api: Api, db: Database, sql_counter: Any
) -> None:
    """Node metrics (p50/p95, counts, failure rate, how current) and a job's durations
    compile into the one statement of the read path, with the resolvers' answer."""
    from tests.graphql.differential import both, first_difference

    await make_task_type(db, "scan")
    _, reader = await make_token(db, role=TokenRole.READER)
    batch = await make_batch(db, one_node("scan", 4))
    ids = await job_ids(db, batch.id)
    async with UnitOfWork(db.write_session) as uow:
        for job_id in ids:
            await move_job(uow, job_id, S.RUNNING, W)
        await uow.commit()
    await complete_timed(db, ids[0], job_seconds=120, run_seconds=100)
    await complete_timed(db, ids[1], job_seconds=180)  # no run time reported
    async with UnitOfWork(db.write_session) as uow:
        await move_job(uow, ids[2], S.FAILED, W)
        await uow.commit()
    query = NODE_METRICS.replace(
        "metrics { node completed } } }",
        "metrics { node completed } jobs { edges { node { runDuration { seconds iso }"
        " jobDuration { iso } totalDuration { seconds } } } } } }",
    )
    variables = {"id": gid("Batch", batch.id)}
    for fold in (False, True):
        if fold:
            await fold_counters(db)
        compiled, resolved = await both(api, resolver_api, query, variables, reader)
        assert compiled == resolved, first_difference(compiled, resolved)
    await api.data("{ viewer { role } }", token=reader)  # the token cached from here on
    sql_counter.statements.clear()
    found = await api.data(query, variables, token=reader)
    assert sql_counter.count == 1, sql_counter.statements  # compiled, not resolved
    [node_metrics] = found["batch"]["nodeMetrics"]
    assert node_metrics["runDuration"]["p50"]["iso"] == "PT2M20S"  # of 100 s and 180 s
    assert node_metrics["failureRate"] == pytest.approx(1 / 3)
