"""The README walkthrough runs as written, top to bottom."""

from __future__ import annotations

import asyncio
import base64
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from db.session import Database
from launcher.cli import main
from tests.factories import make_token, run_creation
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


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


async def test_readme_walkthrough_runs_as_written(
    api: Api, db: Database, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("BROKER_URL", "redis://127.0.0.1:1/0")
    _, admin = await make_token(db, owner="you")
    results: dict[str, dict[str, Any]] = {}
    variables: dict[str, Any] = {}
    for name, document in walkthrough():
        wanted = {k: v for k, v in variables.items() if f"${k}" in document}
        results[name] = await api.data(document, wanted or None, token=admin)
        if name == "CreateTaskType":
            variables["taskType"] = results[name]["createTaskType"]["taskType"]["id"]
        if name == "CreateBatch":
            batch = results[name]["createBatch"]["batch"]
            variables["batch"] = batch["id"]
            # What the worker does in the background under `make run`.
            await run_creation(db, int(base64.b64decode(batch["id"]).decode().split(":")[1]))
        if name == "ReprocessBatch":
            await asyncio.to_thread(main, ["demo"])  # the demo block comes next

    assert results["WhoAmI"]["viewer"] == {"authenticated": True, "owner": "you", "role": "ADMIN"}
    assert results["CreateWorkspace"]["createWorkspace"]["__typename"] == "WorkspaceCreated"
    assert results["CreateTaskType"]["createTaskType"]["__typename"] == "TaskTypeCreated"
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
    assert results["CreateBatch"]["createBatch"]["validation"]["plannedJobs"] == 2
    explored = results["ExploreBatch"]["batch"]
    assert explored["isCreationDone"] is True
    assert explored["counters"]["queued"] == 2  # dispatched at creation
    assert explored["jobs"]["edges"][0]["node"]["events"]["edges"][0]["node"]["toStatus"] == (
        "PENDING"
    )
    assert results["EditBatch"]["editBatch"]["batch"] == {
        "title": "Resize March (urgent)",
        "priority": 50,
    }
    again = results["ReprocessBatch"]["reprocessBatch"]
    assert again["__typename"] == "BatchCreated"
    assert again["batch"]["supersededBatch"] == {"id": variables["batch"]}
    assert again["batch"]["rootBatch"] == {"id": variables["batch"]}
    assert again["validation"]["plannedRecipes"] == 2
    assert again["validation"]["previousBatch"] == {"isSuperseded": True}
    assert results["CancelBatch"]["cancelBatch"]["canceledJobs"] == 2
    demo_chain = results["DemoChain"]["batches"]["edges"]
    assert [e["node"]["isSuperseded"] for e in demo_chain] == [True, False]
    assert len(walkthrough()) == len(results)
