"""Metrics, live (issue 12): batchProgress carries the node metrics, and
batchComparisonChanged follows a chain whose latest batch is running — both fed by the
job events and by the counters fold's announcements (a real server)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from db.enums import JobStatus, RerunMode, TokenRole
from db.session import Database
from db.uow import UnitOfWork
from domain.batches.service import PreviousBatch
from domain.jobs.rules import Initiator
from tests.factories import fold_counters, make_batch, make_token, move_job
from tests.graphql.test_comparison import chain, jobs_by_node, recipe, run_batch
from tests.graphql.test_metrics import complete_timed
from tests.graphql.test_subscriptions import Subscriber, gid, subscribe

PROGRESS = """subscription($b: ID!) { batchProgress(batch: $b) { counters { completed }
  nodeMetrics { node completed percentilesCompleted runDuration { avg { iso } p50 { iso } } } } }"""
COMPARISON = """subscription($root: ID!) { batchComparisonChanged(rootBatchId: $root) {
  batches { title }
  nodes { node metrics { metric values isRegression } } } }"""


def values(found: dict[str, Any], node: str, metric: str) -> list[Any]:
    metrics = next(n["metrics"] for n in found["nodes"] if n["node"] == node)
    return next(m["values"] for m in metrics if m["metric"] == metric)


async def test_batch_progress_carries_node_metrics_and_their_percentiles(
    live_server: str, db: Database
) -> None:
    [batch] = await chain(db, ("watched", recipe("resize")))
    _, token = await make_token(db, role=TokenRole.READER)
    ids = (await jobs_by_node(db, batch.id))["resize"]
    ws = await subscribe(live_server, token, PROGRESS, {"b": gid("Batch", batch.id)})
    try:
        sub = Subscriber(ws)
        first = (await sub.next())["batchProgress"]
        assert first["nodeMetrics"] == [
            {
                "node": "resize",
                "completed": 0,
                "percentilesCompleted": 0,
                "runDuration": {"avg": None, "p50": None},
            }
        ]
        async with UnitOfWork(db.write_session) as uow:
            await move_job(uow, ids[0], JobStatus.RUNNING, Initiator.WORKER)
            await uow.commit()
        await complete_timed(db, ids[0], job_seconds=3, run_seconds=2)
        while (update := (await sub.next())["batchProgress"])["counters"]["completed"] < 1:
            pass
        [live] = update["nodeMetrics"]
        assert live["runDuration"] == {"avg": {"iso": "PT2S"}, "p50": None}
        await fold_counters(db)  # announces the recomputed percentiles
        while (update := (await sub.next())["batchProgress"])["nodeMetrics"][0][
            "percentilesCompleted"
        ] < 1:
            pass
        assert update["nodeMetrics"][0]["runDuration"]["p50"] == {"iso": "PT2S"}
    finally:
        await ws.close()


async def test_a_running_chain_comparison_updates_as_it_runs(
    live_server: str, db: Database
) -> None:
    one, two = await chain(db, ("v1", recipe("resize")), ("v2", None))
    _, token = await make_token(db, role=TokenRole.READER)
    await run_batch(db, one.id, {"resize": 1.0})
    await fold_counters(db)
    ws = await subscribe(live_server, token, COMPARISON, {"root": gid("Batch", one.id)})
    try:
        sub = Subscriber(ws)
        first = (await sub.next())["batchComparisonChanged"]
        assert [b["title"] for b in first["batches"]] == ["v1", "v2"]
        assert values(first, "resize", "COMPLETED") == [4, 0]
        assert values(first, "resize", "RUN_DURATION_P50") == [1, None]

        await run_batch(db, two.id, {"resize": 5.0})  # the latest batch runs, slower
        while (
            values(update := (await sub.next())["batchComparisonChanged"], "resize", "COMPLETED")[1]
            < 4
        ):
            pass
        assert values(update, "resize", "RUN_DURATION_AVG") == [1, 5]
        await fold_counters(db)
        while (
            values(
                update := (await sub.next())["batchComparisonChanged"], "resize", "RUN_DURATION_P50"
            )[1]
            is None
        ):
            pass
        p50 = next(
            m
            for m in next(n for n in update["nodes"] if n["node"] == "resize")["metrics"]
            if m["metric"] == "RUN_DURATION_P50"
        )
        assert p50 == {
            "metric": "RUN_DURATION_P50",
            "values": [1, 5],
            "isRegression": [False, True],
        }

        # A re-processing adds the chain's next batch: the comparison follows.
        await make_batch(
            db, None, title="v3", previous=PreviousBatch(root_batch_id=one.id, rerun=RerunMode.ALL)
        )
        while len((update := (await sub.next())["batchComparisonChanged"])["batches"]) < 3:
            pass
        assert [b["title"] for b in update["batches"]] == ["v1", "v2", "v3"]
    finally:
        await ws.close()


async def test_a_comparison_subscription_to_no_chain_sends_it_empty_and_ends(
    live_server: str, db: Database
) -> None:
    _, token = await make_token(db, role=TokenRole.READER)
    ws = await subscribe(live_server, token, COMPARISON, {"root": gid("Batch", 424242)})
    try:
        sub = Subscriber(ws)
        assert (await sub.next())["batchComparisonChanged"] == {"batches": [], "nodes": []}
        done = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert done == {"id": "1", "type": "complete"}
    finally:
        await ws.close()
