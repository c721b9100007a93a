"""The README walkthrough runs as written, top to bottom — its jobs included.

What the fleet does under `make run` (create a batch's recipes and jobs, run the jobs
of built-in implementations) is done here by calling the same actors in-process;
`batchgraph demo` runs for real, with a worker process of its own.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from graphql import parse, validate
from sqlalchemy import select

from db.enums import JobStatus
from db.models import Job
from db.session import Database
from domain.demo.service import ARTIFACTS_TITLE
from jobs import implementations, runtime
from launcher.cli import main
from tests.factories import RecordingDispatcher, make_token, run_creation
from tests.graphql.artifact_helpers import create, upload_all
from tests.graphql.conftest import Api

README = Path(__file__).resolve().parents[2] / "README.md"


def walkthrough() -> list[tuple[str, str]]:
    blocks = re.findall(r"```graphql\n(.*?)```", README.read_text(), flags=re.S)
    named = []
    for block in blocks:
        match = re.match(r"\s*(?:query|mutation|subscription)\s+(\w+)", block)
        assert match, f"every README operation is named: {block[:60]}"
        named.append((match.group(1), block))
    return named


def db_id(global_id: str) -> int:
    return int(base64.b64decode(global_id).decode().split(":")[1])


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
async def fleet(database_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[None]:
    """The fleet's actors, in-process; builtin.simulate does not really wait."""
    monkeypatch.setattr(implementations, "MAX_SIMULATE_SECONDS", 0.0)
    runtime.configure(database_url)
    runtime.use_dispatcher(RecordingDispatcher())
    yield
    runtime.use_dispatcher(None)
    await runtime.dispose()


async def run_fleet(db: Database, batch_id: int) -> None:
    """Run the batch's queued fleet jobs until none is left (maxParallelJobs lets more in
    as jobs complete), as `make run`'s worker does."""
    from jobs.actors.run import run

    for _ in range(20):
        async with db.read_session() as s:
            queued = list(
                await s.scalars(
                    select(Job.id).where(Job.batch_id == batch_id, Job.status == JobStatus.QUEUED)
                )
            )
        if not queued:
            return
        for job_id in queued:
            await run(job_id)
    pytest.fail("the fleet did not drain the batch")


async def test_readme_walkthrough_runs_as_written(
    api: Api,
    db: Database,
    database_url: str,
    redis_url: str,
    broker: Any,
    fleet: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from graphql_api.schema import build_schema
    from graphql_api.settings import Limits

    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("BROKER_URL", redis_url)
    schema = build_schema(Limits.from_env())._schema
    _, admin = await make_token(db, owner="you")
    results: dict[str, dict[str, Any]] = {}
    variables: dict[str, Any] = {}
    for name, document in walkthrough():
        assert validate(schema, parse(document)) == [], name
        wanted = {k: v for k, v in variables.items() if f"${k}" in document}
        if document.lstrip().startswith("subscription"):
            continue  # valid as written; subscriptions run in test_subscriptions/test_browser
        if name == "EnableWorker":  # what `examples/pull_worker.py register` does
            registered = await api.data(
                """mutation { registerWorker(input: {host: "build1.example.org"}) {
                ... on WorkerRegistered { tokenId } } }"""
            )
            wanted["tokenId"] = registered["registerWorker"]["tokenId"]
        if (
            name == "Captions"
        ):  # what `batchgraph artifact upload` does (tests/test_artifact_cli.py)
            files = {"cat.txt": b"a cat on a mat\n", "dogs.txt": b"two dogs in the snow\n"}
            uploaded = await create(
                api,
                admin,
                files,
                workspace="imaging",
                category="caption",
                data={"image": "https://img.example/1.png"},
            )
            await upload_all(api, admin, uploaded, files)
        if name == "DemoChain":
            broker.flush_all()  # the demo's worker must not pick up this test's messages
            assert await asyncio.to_thread(main, ["demo"]) == 0
        results[name] = await api.data(document, wanted or None, token=admin)
        if name == "CreateTaskType":
            variables["taskType"] = results[name]["createTaskType"]["taskType"]["id"]
        if name == "CreateBatch":
            variables["batch"] = results[name]["createBatch"]["batch"]["id"]
            # What the fleet does in the background under `make run`.
            await run_creation(db, db_id(variables["batch"]))
            await run_fleet(db, db_id(variables["batch"]))
        if name == "ReprocessBatch":  # the next block cancels it while it runs
            variables["batch"] = results[name]["reprocessBatch"]["batch"]["id"]
            await run_creation(db, db_id(variables["batch"]))
        if name == "DemoChain":  # the reader copies the catalog chain's root id
            variables["root"] = next(
                e["node"]["id"]
                for e in results[name]["batches"]["edges"]
                if e["node"]["title"] == "Catalog render"
            )
        if name == "Captions":
            variables["artifact"] = results[name]["artifacts"]["edges"][0]["node"]["id"]
        if name == "ChecksumBatch":
            variables["batch"] = results[name]["createBatch"]["batch"]["id"]
            await run_creation(db, db_id(variables["batch"]))
            await run_fleet(db, db_id(variables["batch"]))
        if name == "ChecksumOutputs":
            job = results[name]["batch"]["jobs"]["edges"][0]["node"]
            variables["output"] = job["outputs"][0]["id"]
        if name == "CreateCaptionBatch":
            variables["batch"] = results[name]["createBatch"]["batch"]["id"]
            await run_creation(db, db_id(variables["batch"]))

    assert results["WhoAmI"]["viewer"] == {"authenticated": True, "owner": "you", "role": "ADMIN"}
    assert results["CreateWorkspace"]["createWorkspace"]["__typename"] == "WorkspaceCreated"
    created = results["CreateTaskType"]["createTaskType"]
    assert created["__typename"] == "TaskTypeCreated"
    assert created["taskType"]["currentRevision"] == {"implementation": "builtin.simulate"}
    bad = results["BadTaskType"]["createTaskType"]
    assert bad["__typename"] == "ValidationFailed"
    assert {v["path"] for v in bad["violations"]} == {
        "$.name",
        "$.parametersSchema.type",
        "$.maxAttempts",
    }
    check = results["CheckParameters"]["validateParameters"]
    assert check["isValid"] is False
    assert {v["path"] for v in check["violations"]} == {"$.url", "$.width"}
    revision = results["NewRevision"]["createTaskTypeRevision"]["revision"]
    assert revision["taskType"]["latestRevision"] == 2
    assert revision["implementation"] == "builtin.simulate"  # kept
    assert results["CheckIn"]["checkInTaskType"]["taskType"]["available"] is True
    listing = results["TaskTypes"]["taskTypes"]
    assert listing["totalCount"] == 1
    assert [e["node"]["name"] for e in listing["edges"]] == ["resize-image"]
    assert results["TaskTypes"]["taskType"]["currentRevision"] == {"revision": 2}
    token = results["CreateToken"]["createToken"]
    assert token["__typename"] == "TokenCreated"
    assert token["secret"].startswith("bg_")
    validation = results["ValidateBatch"]["validateBatch"]
    assert validation["isValid"] is False
    assert [(e["name"], e["node"], e["inputIndex"]) for e in validation["errors"]] == [
        ("PARAMETERS_INVALID", "resize", 1)
    ]
    assert results["CreateBatch"]["createBatch"]["validation"]["plannedJobs"] == 4

    # The walkthrough's jobs ran on the (in-process) fleet and completed.
    explored = results["ExploreBatch"]["batch"]
    assert explored["isCreationDone"] is True
    assert explored["counters"]["completed"] == 4
    jobs = [e["node"] for e in explored["jobs"]["edges"]]
    assert {j["status"] for j in jobs} == {"COMPLETED"}
    assert all(j["result"]["url"].startswith("https://img.example/") for j in jobs)
    assert all(j["waitingReason"] is None for j in jobs)
    assert [e["node"]["toStatus"] for e in jobs[0]["events"]["edges"]][-2:] == [
        "RUNNING",
        "COMPLETED",
    ]
    assert results["EditBatch"]["editBatch"]["batch"] == {
        "title": "Resize March (urgent)",
        "priority": 50,
    }
    again = results["ReprocessBatch"]["reprocessBatch"]
    assert again["__typename"] == "BatchCreated"
    assert again["batch"]["rootBatch"] == again["batch"]["supersededBatch"]
    assert again["validation"]["plannedRecipes"] == 4
    assert again["validation"]["previousBatch"] == {"isSuperseded": True}
    canceled = results["CancelBatch"]["cancelBatch"]
    assert canceled["canceledJobs"] == 4
    assert canceled["batch"]["counters"] == {"completed": 0, "canceled": 4}

    # The pull-worker path: the jobs wait, and say why.
    word_count = results["CreateWordCount"]["createTaskType"]["taskType"]
    assert word_count["currentRevision"] == {"implementation": "external"}
    waiting = results["WhyWaiting"]["batch"]["jobs"]["edges"]
    assert [(e["node"]["status"], e["node"]["waitingReason"]) for e in waiting] == [
        ("QUEUED", "no connected worker offers this task type")
    ] * 3
    enabled = results["EnableWorker"]["setTokenEnabled"]
    assert enabled == {
        "__typename": "TokenUpdated",
        "token": {"owner": "worker build1-example-org", "enabled": True},
    }

    # Artifacts: uploaded, read by a batch's fleet job, which made an output; lineage.
    assert results["CreateCaptionCategory"]["createArtifactCategory"]["category"]["name"] == (
        "caption"
    )
    [caption] = [e["node"] for e in results["Captions"]["artifacts"]["edges"]]
    assert (caption["isComplete"], caption["fileCount"]) == (True, 2)
    job = results["ChecksumOutputs"]["batch"]["jobs"]["edges"][0]["node"]
    assert job["status"] == "COMPLETED"
    assert job["result"] == {"files": 2, "bytes": 36, "words": 10}
    assert job["inputs"] == [{"id": variables["artifact"], "category": "caption"}]
    [output] = job["outputs"]
    assert (output["category"], output["isComplete"]) == ("checksums", True)
    lineage = results["Lineage"]
    assert lineage["output"]["relations"] == [
        {"type": "BUILT_USING", "target": {"id": variables["artifact"], "category": "caption"}}
    ]
    assert [
        (n["depth"], n["artifact"]["category"]) for n in lineage["output"]["lineage"]["nodes"]
    ] == [(0, "checksums"), (1, "caption")]
    assert lineage["output"]["lineage"]["edges"] == [
        {"type": "BUILT_USING", "source": variables["output"], "target": variables["artifact"]}
    ]
    assert lineage["caption"]["relatedFrom"] == [
        {"type": "BUILT_USING", "source": {"category": "checksums"}}
    ]
    demo_lineage = results["DemoLineage"]["artifacts"]["edges"][0]["node"]["lineage"]
    assert len(demo_lineage["nodes"]) == 6
    assert len(demo_lineage["edges"]) == 5

    demo_chain = [e["node"] for e in results["DemoChain"]["batches"]["edges"]]
    assert [(b["title"] == ARTIFACTS_TITLE, b["isSuperseded"]) for b in demo_chain] == [
        (False, True),
        (False, False),
        (False, True),
        (False, True),
        (False, False),
        (True, False),  # the checksum batch over the demo's captions
    ]
    assert demo_chain[1]["counters"]["completed"] == demo_chain[1]["counters"]["jobsTotal"] > 0
    # The catalog chain compared: one node regressed, one improved, as the README says.
    compared = results["CompareDemo"]["batchComparison"]
    assert [b["title"] for b in compared["batches"]] == [
        "Catalog render",
        "Catalog render, faster compression",
        "Catalog render, larger pages",
    ]
    assert {(r["batch"]["title"], r["node"]) for r in compared["regressions"]} == {
        ("Catalog render, larger pages", "render")
    }
    assert {(r["batch"]["title"], r["node"]) for r in compared["improvements"]} == {
        ("Catalog render, faster compression", "compress")
    }
    assert len(walkthrough()) == len(results) + 1  # + the subscription
