"""The README walkthrough runs as written, top to bottom."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from db.session import Database
from tests.factories import make_token
from tests.graphql.conftest import Api

README = Path(__file__).resolve().parents[2] / "README.md"


def walkthrough() -> list[tuple[str, str]]:
    blocks = re.findall(r"```graphql\n(.*?)```", README.read_text(), flags=re.S)
    named = []
    for block in blocks:
        match = re.match(r"\s*(?:query|mutation)\s+(\w+)", block)
        assert match, f"every README operation is named: {block[:60]}"
        named.append((match.group(1), block))
    return named


async def test_readme_walkthrough_runs_as_written(api: Api, db: Database) -> None:
    _, admin = await make_token(db, owner="you")
    results: dict[str, dict[str, Any]] = {}
    variables: dict[str, Any] = {}
    for name, document in walkthrough():
        wanted = {k: v for k, v in variables.items() if f"${k}" in document}
        results[name] = await api.data(document, wanted or None, token=admin)
        if name == "CreateTaskType":
            variables["taskType"] = results[name]["createTaskType"]["taskType"]["id"]

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
    assert len(walkthrough()) == len(results)
