"""`batchgraph demo` seeds a public chain anyone can explore at once, run for real by a
fleet worker process the command starts."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from db.session import Database
from domain.demo.service import ARTIFACTS_TITLE, CATALOG_STEPS
from launcher.cli import main
from tests.graphql.conftest import Api


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


async def test_demo_seeds_a_chain_to_explore_anonymously(
    api: Api,
    db: Database,
    database_url: str,
    redis_url: str,
    broker: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("BROKER_URL", redis_url)
    broker.flush_all()
    assert await asyncio.to_thread(main, ["demo"]) == 0
    printed = capsys.readouterr().out
    assert "Seeded the public workspace 'demo'" in printed

    data = await api.data("""{ batches(filter: {workspace: "demo"}) { edges { node { title
        isSuperseded counters { jobsTotal completed failed canceled pending queued blocked
            recipesTotal recipesCompleted }
        id nodeMetrics { node completed failed runDuration { avg { iso } } }
        jobs(filter: {statuses: [FAILED]}) { edges { node { error { code category } } } }
        chain { title } } } } }""")  # anonymous: the demo workspace is public
    first, second, *catalog = (
        e["node"] for e in data["batches"]["edges"] if e["node"]["title"] != ARTIFACTS_TITLE
    )
    assert first["isSuperseded"] is True
    assert first["counters"] == {
        "jobsTotal": 40,
        "completed": 34,
        "failed": 3,
        "canceled": 3,
        "pending": 0,
        "queued": 0,
        "blocked": 0,
        "recipesTotal": 20,
        "recipesCompleted": 17,
    }
    assert [(m["node"], m["completed"], m["failed"]) for m in first["nodeMetrics"]] == [
        ("resize", 17, 3),
        ("thumbnail", 17, 0),
    ]
    assert first["nodeMetrics"][0]["runDuration"]["avg"]["iso"].startswith("PT")
    # They really failed, on the fleet, the way builtin.simulate was asked to.
    assert [e["node"]["error"] for e in first["jobs"]["edges"]] == [
        {"code": "SOURCE_UNREADABLE", "category": "DOMAIN"}
    ] * 3
    # The failed part again, with the fixed revision: the 3 failed recipes, both nodes
    # (resize failed, so its thumbnail was canceled) — and this time all complete.
    assert second["isSuperseded"] is False
    assert second["counters"]["recipesTotal"] == 3
    assert second["counters"]["recipesCompleted"] == 3
    assert (second["counters"]["jobsTotal"], second["counters"]["completed"]) == (6, 6)
    assert second["jobs"]["edges"] == []
    assert [b["title"] for b in second["chain"]] == [first["title"], second["title"]]

    # The catalog chain: its comparison shows one regression and one improvement — the
    # third batch renders slower, the second compresses faster — and nothing else.
    assert [b["title"] for b in catalog] == [t for t, _, _ in CATALOG_STEPS]
    root = catalog[0]["id"]
    assert f"batchgraph compare {root}" in printed
    found = (
        await api.data(
            """query($root: ID!) { batchComparison(rootBatchId: $root) {
            batches { title }
            regressions(first: 100) { batch { title } node metric percentChange }
            improvements(first: 100) { batch { title } node metric percentChange } } }""",
            {"root": root},
        )
    )["batchComparison"]
    assert {(r["batch"]["title"], r["node"]) for r in found["regressions"]} == {
        (CATALOG_STEPS[2][0], "render")
    }
    assert {(r["batch"]["title"], r["node"]) for r in found["improvements"]} == {
        (CATALOG_STEPS[1][0], "compress")
    }
    run_p50 = {r["metric"]: r["percentChange"] for r in found["regressions"]}
    assert run_p50["RUN_DURATION_P50"] > 100  # 1 s → 2.5 s
    assert all(c["completed"] == 16 for c in (b["counters"] for b in catalog))
    # Artifacts: captions, checksums made by fleet jobs from them, a report relating to
    # those; the report's lineage is a real graph.
    found = await api.data("""{ artifacts(filter: {workspace: "demo", category: "report"}) {
        edges { node { isComplete lineage(depth: 5) { isTruncated
          nodes { depth artifact { category createdBy { status } } }
          edges { type } } } } } }""")
    [report] = [e["node"] for e in found["artifacts"]["edges"]]
    assert report["isComplete"] is True
    lineage = report["lineage"]
    categories = sorted((n["depth"], n["artifact"]["category"]) for n in lineage["nodes"])
    assert categories == [
        (0, "report"),
        (1, "checksums"),
        (1, "checksums"),
        (2, "caption"),
        (2, "caption"),
        (2, "caption"),
    ]
    assert {
        n["artifact"]["createdBy"]["status"]
        for n in lineage["nodes"]
        if n["artifact"]["category"] == "checksums"
    } == {"COMPLETED"}
    assert sorted(e["type"] for e in lineage["edges"]) == ["BUILT_USING"] * 3 + ["RELATES_TO"] * 2
    edition = await api.data("""{ artifacts(filter: {workspace: "demo", category: "caption"})
        { edges { node { relations { type } relatedFrom { type } } } } }""")
    assert {"type": "EXTENDS"} in [
        r for e in edition["artifacts"]["edges"] for r in e["node"]["relations"]
    ]

    assert await asyncio.to_thread(main, ["demo"]) == 0  # a second run adds nothing
    assert "exists already" in capsys.readouterr().out
