"""batchComparison (issue 12): a re-processing chain in Scale's shape — one list per
metric, one value per batch — with the change from each batch to the next, flags for
what regressed or improved beyond a threshold, and a summary sorted by severity."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from sqlalchemy import select

from db.enums import JobStatus, RerunMode, TokenRole
from db.models import Job
from db.session import Database
from db.uow import UnitOfWork
from domain.batches.service import PreviousBatch
from domain.jobs.rules import Initiator
from tests.conftest import StatementCounter, row_counts
from tests.factories import fold_counters, make_batch, make_task_type, make_token, move_job
from tests.graphql.conftest import Api
from tests.graphql.test_metrics import complete_timed

S = JobStatus
W = Initiator.WORKER

COMPARE = """query($root: ID!, $threshold: Float, $min: Float) {
  batchComparison(rootBatchId: $root, threshold: $threshold, minSeconds: $min) {
    threshold minSeconds regressionCount improvementCount
    batches { id title description createdAt }
    metrics { metric unit isJudged values changes percentChanges isRegression isImprovement }
    nodes { node metrics { metric unit values iso changes percentChanges isRegression
      isImprovement } }
    regressions { batch { title } previousBatch { title } node metric unit previous value
      change percentChange previousIso valueIso }
    improvements { batch { title } node metric previous value percentChange } } }"""


def gid(kind: str, pk: int) -> str:
    return base64.b64encode(f"{kind}:{pk}".encode()).decode()


def recipe(*names: str) -> dict[str, Any]:
    return {"nodes": [{"name": n, "taskType": "scan"} for n in names]}


async def jobs_by_node(db: Database, batch_id: int) -> dict[str, list[int]]:
    async with db.read_session() as s:
        rows = await s.execute(
            select(Job.node, Job.id).where(Job.batch_id == batch_id).order_by(Job.id)
        )
    found: dict[str, list[int]] = {}
    for name, job_id in rows:
        found.setdefault(name, []).append(job_id)
    return found


async def run_batch(db: Database, batch_id: int, seconds: dict[str, float], fail: int = 0) -> None:
    """Run every job of the batch through the one path: each node's jobs take
    ``seconds[node]`` (run and job duration alike); the first ``fail`` jobs of the
    first node fail instead."""
    nodes = await jobs_by_node(db, batch_id)
    async with UnitOfWork(db.write_session) as uow:
        for ids in nodes.values():
            for job_id in ids:
                await move_job(uow, job_id, S.RUNNING, W)
        await uow.commit()
    for n, (name, ids) in enumerate(nodes.items()):
        for i, job_id in enumerate(ids):
            if n == 0 and i < fail:
                async with UnitOfWork(db.write_session) as uow:
                    await move_job(uow, job_id, S.FAILED, W)
                    await uow.commit()
            else:
                await complete_timed(
                    db, job_id, job_seconds=seconds[name], run_seconds=seconds[name]
                )


async def chain(db: Database, *steps: tuple[str, dict[str, Any] | None]) -> list[Any]:
    """A chain: the first step creates a batch (four items), each next one re-processes
    every recipe (with a new recipe when given)."""
    await make_task_type(db, "scan")
    title, first = steps[0]
    batches = [
        await make_batch(db, {"recipe": first, "inputs": [{"i": i} for i in range(4)]}, title=title)
    ]
    for title, again in steps[1:]:
        batches.append(
            await make_batch(
                db,
                {"recipe": again} if again else None,
                title=title,
                previous=PreviousBatch(root_batch_id=batches[0].id, rerun=RerunMode.ALL),
            )
        )
    return batches


def series(found: dict[str, Any], node: str | None, metric: str) -> dict[str, Any]:
    listed = (
        found["metrics"]
        if node is None
        else next(n["metrics"] for n in found["nodes"] if n["node"] == node)
    )
    return next(s for s in listed if s["metric"] == metric)


@pytest.fixture
async def reader(db: Database) -> str:
    return (await make_token(db, role=TokenRole.READER))[1]


async def test_a_chain_compared_batch_by_batch(
    api: Api, db: Database, reader: str, sql_counter: StatementCounter
) -> None:
    one, two, three = await chain(
        db,
        ("v1", recipe("resize", "thumb")),
        ("v2: faster thumbnails", None),
        ("v3: slower resize", None),
    )
    await run_batch(db, one.id, {"resize": 10.0, "thumb": 4.0})
    await run_batch(db, two.id, {"resize": 10.0, "thumb": 2.0})
    await run_batch(db, three.id, {"resize": 30.0, "thumb": 2.0}, fail=1)
    await fold_counters(db)

    await api.data("{ viewer { owner } }", token=reader)  # the token's last use noted
    sql_counter.statements.clear()
    found = (await api.data(COMPARE, {"root": gid("Batch", one.id)}, token=reader))[
        "batchComparison"
    ]
    # The token's lookup, the chain, its nodes: the comparison reads no job.
    assert sql_counter.count <= 3, sql_counter.statements
    assert not [q for q in sql_counter.statements if "FROM job" in q]

    assert (found["threshold"], found["minSeconds"]) == (0.2, 0.05)
    assert [b["title"] for b in found["batches"]] == [
        "v1",
        "v2: faster thumbnails",
        "v3: slower resize",
    ]
    assert [b["id"] for b in found["batches"]] == [gid("Batch", b.id) for b in (one, two, three)]
    assert all(b["createdAt"] and b["description"] == "" for b in found["batches"])

    # Batch-level: one value per batch, changes from the previous batch.
    assert series(found, None, "JOBS_TOTAL")["values"] == [8, 8, 8]
    assert series(found, None, "COMPLETED")["changes"] == [None, 0, -1]
    assert series(found, None, "RECIPES_COMPLETED")["values"] == [4, 4, 3]
    rate = series(found, None, "FAILURE_RATE")
    assert (rate["unit"], rate["isJudged"], rate["values"]) == ("RATIO", True, [0, 0, 0.125])
    assert rate["isRegression"] == [False, False, True]
    assert rate["percentChanges"] == [None, 0, None]  # from 0: no percentage

    # Per node: the union of nodes, each metric a list over the chain.
    assert [n["node"] for n in found["nodes"]] == ["resize", "thumb"]
    p50 = series(found, "resize", "RUN_DURATION_P50")
    assert p50["values"] == [10, 10, 30]
    assert p50["iso"] == ["PT10S", "PT10S", "PT30S"]
    assert p50["changes"] == [None, 0, 20]
    assert p50["percentChanges"] == [None, 0, 200]
    assert p50["isRegression"] == [False, False, True]
    thumb = series(found, "thumb", "JOB_DURATION_AVG")
    assert thumb["values"] == [4, 2, 2]
    assert thumb["isImprovement"] == [False, True, False]
    assert series(found, "resize", "RUN_DURATION_MAX")["isRegression"] == [False] * 3  # not judged

    # The summary: most severe first — failure rates from zero, then 3× durations.
    summary = [(r["node"], r["metric"], r["batch"]["title"]) for r in found["regressions"]]
    assert summary[:2] == [
        ("resize", "FAILURE_RATE", "v3: slower resize"),
        (None, "FAILURE_RATE", "v3: slower resize"),
    ]
    assert {m for node, m, _ in summary[2:]} == {
        f"{kind}_DURATION_{stat}" for kind in ("RUN", "JOB") for stat in ("AVG", "P50", "P95")
    }
    assert len(summary) == found["regressionCount"] == 8
    first_duration = found["regressions"][2]
    assert first_duration["previousBatch"]["title"] == "v2: faster thumbnails"
    assert (first_duration["previousIso"], first_duration["valueIso"]) == ("PT10S", "PT30S")
    assert first_duration["unit"] == "SECONDS"
    assert {
        (i["node"], i["batch"]["title"], i["percentChange"]) for i in found["improvements"]
    } == {("thumb", "v2: faster thumbnails", -50.0)}
    assert found["improvementCount"] == 6

    # A higher threshold (per request) flags less.
    lenient = (
        await api.data(COMPARE, {"root": gid("Batch", one.id), "threshold": 3.0}, token=reader)
    )["batchComparison"]
    assert [(r["node"], r["metric"]) for r in lenient["regressions"]] == [
        ("resize", "FAILURE_RATE"),
        (None, "FAILURE_RATE"),
    ]
    assert lenient["improvements"] == []


async def test_a_renamed_node_appears_as_two_rows(api: Api, db: Database, reader: str) -> None:
    """Scale's worked example: thumb renamed thumbnail between the batches of a chain."""
    one, two = await chain(
        db, ("before", recipe("resize", "thumb")), ("after", recipe("resize", "thumbnail"))
    )
    await run_batch(db, one.id, {"resize": 1.0, "thumb": 1.0})
    await run_batch(db, two.id, {"resize": 1.0, "thumbnail": 1.0})
    found = (await api.data(COMPARE, {"root": gid("Batch", one.id)}, token=reader))[
        "batchComparison"
    ]
    assert [n["node"] for n in found["nodes"]] == ["resize", "thumb", "thumbnail"]
    assert series(found, "thumb", "COMPLETED")["values"] == [4, None]
    assert series(found, "thumbnail", "COMPLETED")["values"] == [None, 4]
    assert series(found, "thumb", "COMPLETED")["changes"] == [None, None]
    assert series(found, "resize", "COMPLETED")["changes"] == [None, 0]
    assert series(found, "thumbnail", "RUN_DURATION_AVG")["iso"] == [None, "PT1S"]


async def test_a_chain_of_one_batch_has_null_changes(api: Api, db: Database, reader: str) -> None:
    [one] = await chain(db, ("alone", recipe("resize")))
    await run_batch(db, one.id, {"resize": 2.0})
    found = (await api.data(COMPARE, {"root": gid("Batch", one.id)}, token=reader))[
        "batchComparison"
    ]
    assert len(found["batches"]) == 1
    for listed in [found["metrics"], *(n["metrics"] for n in found["nodes"])]:
        for s in listed:
            assert (s["changes"], s["percentChanges"]) == ([None], [None])
            assert s["isRegression"] == s["isImprovement"] == [False]
    assert found["regressions"] == found["improvements"] == []
    assert series(found, "resize", "RUN_DURATION_AVG")["iso"] == ["PT2S"]


def assert_empty(found: dict[str, Any]) -> None:
    assert found["batches"] == found["nodes"] == found["regressions"] == []
    assert all(s["values"] == [] for s in found["metrics"])
    assert (found["regressionCount"], found["improvementCount"]) == (0, 0)


async def test_ids_that_name_no_readable_root_give_an_empty_comparison(
    api: Api, db: Database, reader: str
) -> None:
    one, two = await chain(db, ("first", recipe("resize")), ("second", None))
    [job_id, *_] = (await jobs_by_node(db, one.id))["resize"]
    for root in (
        gid("Batch", 999_999),  # unknown
        gid("Batch", two.id),  # not a root: like Scale, no chain has that root
        gid("Job", job_id),  # an id of another type
        "not an id",
    ):
        found = (await api.data(COMPARE, {"root": root}, token=reader))["batchComparison"]
        assert_empty(found)
    # The default workspace is private: anonymously the chain is not there at all —
    # exactly the answer an unknown id gets.
    hidden = (await api.data(COMPARE, {"root": gid("Batch", one.id)}))["batchComparison"]
    assert_empty(hidden)
    seen = (await api.data(COMPARE, {"root": gid("Batch", one.id)}, token=reader))[
        "batchComparison"
    ]
    assert len(seen["batches"]) == 2


@pytest.mark.parametrize(
    ("variables", "path"),
    [
        ({"threshold": -0.5}, "threshold"),
        ({"threshold": 1e9}, "threshold"),
        ({"min": -1.0}, "minSeconds"),
        ({"min": 1e12}, "minSeconds"),
    ],
)
async def test_bad_options_get_a_coded_refusal_and_read_nothing(
    api: Api,
    db: Database,
    reader: str,
    sql_counter: StatementCounter,
    variables: dict[str, Any],
    path: str,
) -> None:
    [one] = await chain(db, ("first", recipe("resize")))
    before = await row_counts(db)
    sql_counter.statements.clear()
    status, errors = await api.errors(
        COMPARE, {"root": gid("Batch", one.id), **variables}, token=reader
    )
    assert status == 400
    assert errors[0]["extensions"]["code"] == "VALIDATION_FAILED"
    assert path in errors[0]["message"]
    assert not [q for q in sql_counter.statements if "batch" in q.lower()]  # refused first
    assert await row_counts(db) == before


async def test_a_bad_summary_size_is_a_bad_request(api: Api, db: Database, reader: str) -> None:
    [one] = await chain(db, ("first", recipe("resize")))
    status, errors = await api.errors(
        """query($root: ID!) { batchComparison(rootBatchId: $root) {
        regressions(first: -1) { metric } } }""",
        {"root": gid("Batch", one.id)},
        token=reader,
    )
    assert (status, errors[0]["extensions"]["code"]) == (400, "BAD_REQUEST")


async def test_threshold_zero_flags_any_judged_change_past_the_floor(
    api: Api, db: Database, reader: str
) -> None:
    one, two = await chain(db, ("a", recipe("resize")), ("b", None))
    await run_batch(db, one.id, {"resize": 1.0})
    await run_batch(db, two.id, {"resize": 1.1})
    await fold_counters(db)
    found = (
        await api.data(
            COMPARE, {"root": gid("Batch", one.id), "threshold": 0, "min": 0}, token=reader
        )
    )["batchComparison"]
    assert series(found, "resize", "RUN_DURATION_P50")["isRegression"] == [False, True]
    default = (await api.data(COMPARE, {"root": gid("Batch", one.id)}, token=reader))[
        "batchComparison"
    ]
    assert default["regressions"] == []  # 10 % is within the default 20 %
