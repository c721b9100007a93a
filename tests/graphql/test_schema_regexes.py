"""ReDoS through a task type's JSON Schema (attacker review, HIGH).

A writer's ``pattern`` is run against documents that any reader sends. With
Python's backtracking ``re``, ``^(a+)+$`` against 28 ``a`` and a ``!`` froze the
API process for 13 s. Patterns now run on RE2; patterns RE2 cannot run are
refused when the schema is written. The time bounds below only tell a hang (13 s
and more, doubling per character) from an answer; they are not performance targets.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from db.enums import TokenRole
from db.session import Database
from tests.conftest import row_counts
from tests.factories import make_task_type, make_token, make_workspace
from tests.graphql.conftest import Api

CATASTROPHIC = "^(a+)+$"
# 40 characters: Python's backtracking would need hours (it doubles per character; 28
# took 13 s), RE2 needs microseconds. The guard only turns a hang into a failure; it is
# not a speed target (those live in bench/).
ATTACK = "a" * 40 + "!"
HANG_GUARD_SECONDS = 60

CREATE = """mutation($input: CreateTaskTypeInput!) { createTaskType(input: $input) {
  __typename ... on Error { code message } ... on ValidationFailed { violations { path message } }
} }"""
REVISE = """mutation($input: CreateTaskTypeRevisionInput!) { createTaskTypeRevision(input: $input) {
  __typename ... on Error { code message } ... on ValidationFailed { violations { path message } }
} }"""
VALIDATE = """query($id: ID!, $p: JSON!) { validateParameters(taskType: $id, parameters: $p) {
  __typename ... on ParameterValidation { isValid violations { path message } } } }"""
VALIDATE_BATCH = """query($input: BatchInput!) { validateBatch(input: $input) {
  ... on BatchValidation { isValid errors { name path node inputIndex } } } }"""


def _gid(kind: str, pk: int) -> str:
    return base64.b64encode(f"{kind}:{pk}".encode()).decode()


@pytest.fixture
async def writer(db: Database) -> str:
    return (await make_token(db, role=TokenRole.WRITER, owner="wendy"))[1]


@pytest.mark.parametrize(
    ("field", "schema", "path"),
    [
        (
            "parametersSchema",
            {"type": "object", "properties": {"s": {"type": "string", "pattern": r"(a)\1"}}},
            "$.parametersSchema.properties.s.pattern",
        ),
        (
            "resultSchema",
            {"type": "object", "patternProperties": {"^(?=x)": {"type": "string"}}},
            "$.resultSchema.patternProperties['^(?=x)']",
        ),
    ],
)
async def test_a_pattern_re2_cannot_run_is_refused_and_nothing_is_written(
    api: Api, db: Database, writer: str, field: str, schema: dict[str, Any], path: str
) -> None:
    before = await row_counts(db)
    created = await api.data(CREATE, {"input": {"name": "t", field: schema}}, token=writer)
    payload = created["createTaskType"]
    assert payload["__typename"] == "ValidationFailed"
    assert payload["code"] == "VALIDATION_FAILED"
    [violation] = payload["violations"]
    assert violation["path"] == path
    assert violation["message"].startswith("patterns must be RE2 syntax")
    assert await row_counts(db) == before


async def test_a_new_revision_is_held_to_the_same_rule(api: Api, db: Database, writer: str) -> None:
    task_type = await make_task_type(db, "resize")
    before = await row_counts(db)
    revised = await api.data(
        REVISE,
        {
            "input": {
                "taskType": _gid("TaskType", task_type.id),
                "parametersSchema": {"properties": {"s": {"pattern": "(?<!x)y"}}},
            }
        },
        token=writer,
    )
    payload = revised["createTaskTypeRevision"]
    assert payload["__typename"] == "ValidationFailed"
    assert [v["path"] for v in payload["violations"]] == ["$.parametersSchema.properties.s.pattern"]
    assert await row_counts(db) == before


async def test_a_catastrophic_pattern_is_answered_at_once_and_health_stays_up(
    api: Api, client: httpx.AsyncClient, db: Database
) -> None:
    """Anonymous, as in the report: the task type lives in a public workspace."""
    await make_workspace(db, "open", public=True)
    schema = {"type": "object", "properties": {"s": {"type": "string", "pattern": CATASTROPHIC}}}
    task_type = await make_task_type(db, "victim", workspace="open", parameters_schema=schema)
    variables = {"id": _gid("TaskType", task_type.id), "p": {"s": ATTACK}}

    answer, health = await asyncio.wait_for(
        asyncio.gather(api.post(VALIDATE, variables), client.get("/healthz")), HANG_GUARD_SECONDS
    )
    assert health.status_code == 200
    result = answer.json()["data"]["validateParameters"]
    assert result["__typename"] == "ParameterValidation"
    assert result["isValid"] is False
    assert [v["path"] for v in result["violations"]] == ["$.s"]

    fine = await api.data(VALIDATE, {**variables, "p": {"s": "a" * 28}})
    assert fine["validateParameters"]["isValid"] is True


async def test_batch_validation_runs_patterns_on_re2(api: Api, db: Database, writer: str) -> None:
    """createBatch and validateBatch check every item's parameters against the schema."""
    schema = {"type": "object", "properties": {"s": {"type": "string", "pattern": CATASTROPHIC}}}
    await make_task_type(db, "victim", parameters_schema=schema)
    definition = {
        "recipe": {
            "nodes": [{"name": "n", "taskType": "victim", "parameters": {"s": "{{item.s}}"}}]
        },
        "inputs": [{"s": ATTACK}, {"s": "aaa"}, {"s": ATTACK}],
    }
    found = await asyncio.wait_for(
        api.data(VALIDATE_BATCH, {"input": {"title": "t", "definition": definition}}, token=writer),
        HANG_GUARD_SECONDS,
    )
    validation = found["validateBatch"]
    assert validation["isValid"] is False
    assert [(e["name"], e["path"], e["inputIndex"]) for e in validation["errors"]] == [
        ("PARAMETERS_INVALID", "$.s", 0),
        ("PARAMETERS_INVALID", "$.s", 2),
    ]


async def test_a_schema_stored_before_the_rule_reports_instead_of_failing(
    api: Api, db: Database
) -> None:
    """A lookahead written before patterns had to be RE2 is never run on Python's re."""
    _, reader = await make_token(db, role=TokenRole.READER)
    task_type = await make_task_type(db, "legacy")
    async with db.engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE task_type_revision SET parameters_schema ="
                """ '{"properties": {"s": {"pattern": "(?=a)a"}}}' WHERE task_type_id = :id"""
            ),
            {"id": task_type.id},
        )
    found = await api.data(
        VALIDATE, {"id": _gid("TaskType", task_type.id), "p": {"s": "a"}}, token=reader
    )
    result = found["validateParameters"]
    assert result["isValid"] is False
    [violation] = result["violations"]
    assert violation["path"] == "$"
    assert "RE2" in violation["message"]
