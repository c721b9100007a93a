"""Task types over GraphQL (SPEC §5): create, revisions, availability, check-in, validation."""

from __future__ import annotations

from typing import Any

import pytest

from db.enums import TokenRole
from db.session import Database
from tests.conftest import row_counts
from tests.factories import make_task_type, make_token, make_workspace
from tests.graphql.conftest import Api

CREATE = """
mutation($input: CreateTaskTypeInput!) {
  createTaskType(input: $input) {
    __typename
    ... on TaskTypeCreated { taskType { id name available latestRevision checkInTimeoutSeconds
        workspace { name } currentRevision { revision parametersSchema resultSchema
        implementation maxAttempts cachePolicy timeoutSeconds createdBy } } }
    ... on Error { code message }
    ... on ValidationFailed { violations { path message } }
  }
}"""

REVISE = """
mutation($input: CreateTaskTypeRevisionInput!) {
  createTaskTypeRevision(input: $input) {
    __typename
    ... on TaskTypeRevisionCreated { revision { revision parametersSchema description
        implementation timeoutSeconds taskType { latestRevision } } }
    ... on Error { code message }
    ... on ValidationFailed { violations { path message } }
  }
}"""

SCHEMA = {
    "type": "object",
    "required": ["url", "width"],
    "properties": {"url": {"type": "string"}, "width": {"type": "integer", "minimum": 1}},
}


async def _writer(db: Database) -> str:
    return (await make_token(db, role=TokenRole.WRITER, owner="wendy"))[1]


async def test_create_task_type_with_defaults(api: Api, db: Database) -> None:
    writer = await _writer(db)
    data = await api.data(
        CREATE, {"input": {"name": "resize", "parametersSchema": SCHEMA}}, token=writer
    )
    created = data["createTaskType"]
    assert created["__typename"] == "TaskTypeCreated"
    task_type = created["taskType"]
    assert task_type["name"] == "resize"
    assert task_type["available"] is False  # unavailable until checked in or set
    assert task_type["latestRevision"] == 1
    assert task_type["checkInTimeoutSeconds"] == 30
    assert task_type["workspace"] == {"name": "default"}
    assert task_type["currentRevision"] == {
        "revision": 1,
        "parametersSchema": SCHEMA,
        "resultSchema": {"type": "object"},
        "implementation": "external",
        "maxAttempts": 3,
        "cachePolicy": "NONE",
        "timeoutSeconds": None,
        "createdBy": "wendy",
    }


@pytest.mark.parametrize(
    ("overrides", "paths"),
    [
        ({"name": "9lives"}, ["$.name"]),
        ({"name": "a" * 101}, ["$.name"]),
        ({"parametersSchema": {"type": "objectx"}}, ["$.parametersSchema.type"]),
        ({"parametersSchema": [1, 2]}, ["$.parametersSchema"]),
        ({"parametersSchema": "not a schema"}, ["$.parametersSchema"]),
        (
            {"resultSchema": {"properties": {"a": {"minimum": "zero"}}}},
            ["$.resultSchema.properties.a.minimum"],
        ),
        (
            {"parametersSchema": {"$ref": "https://elsewhere.example/s.json"}},
            ["$.parametersSchema['$ref']"],
        ),
        ({"parametersSchema": {"type": "object", "x": "y" * 70_000}}, ["$.parametersSchema"]),
        ({"implementation": "rm -rf /"}, ["$.implementation"]),
        ({"timeoutSeconds": 0}, ["$.timeoutSeconds"]),
        ({"maxAttempts": 0}, ["$.maxAttempts"]),
        ({"maxAttempts": 101}, ["$.maxAttempts"]),
        ({"checkInTimeoutSeconds": 0}, ["$.checkInTimeoutSeconds"]),
        (
            {"checkInTimeoutSeconds": -5, "maxAttempts": 0},
            ["$.checkInTimeoutSeconds", "$.maxAttempts"],
        ),
    ],
)
async def test_invalid_definitions_are_refused_with_paths_and_write_nothing(
    api: Api, db: Database, overrides: dict[str, Any], paths: list[str]
) -> None:
    writer = await _writer(db)
    before = await row_counts(db)
    data = await api.data(CREATE, {"input": {"name": "ok-name", **overrides}}, token=writer)
    payload = data["createTaskType"]
    assert payload["__typename"] == "ValidationFailed", payload
    assert payload["code"] == "VALIDATION_FAILED"
    assert sorted(v["path"] for v in payload["violations"]) == sorted(paths)
    assert await row_counts(db) == before


async def test_duplicate_name_conflicts_and_writes_nothing(api: Api, db: Database) -> None:
    writer = await _writer(db)
    await make_task_type(db, "resize")
    before = await row_counts(db)
    data = await api.data(CREATE, {"input": {"name": "resize"}}, token=writer)
    assert data["createTaskType"]["__typename"] == "Conflict"
    assert data["createTaskType"]["code"] == "CONFLICT"
    assert await row_counts(db) == before


async def test_same_name_in_another_workspace_is_fine(api: Api, db: Database) -> None:
    writer = await _writer(db)
    await make_workspace(db, "team-b")
    await make_task_type(db, "resize")
    data = await api.data(
        CREATE, {"input": {"name": "resize", "workspace": "team-b"}}, token=writer
    )
    assert data["createTaskType"]["taskType"]["workspace"] == {"name": "team-b"}


async def test_unknown_workspace_is_not_found(api: Api, db: Database) -> None:
    writer = await _writer(db)
    before = await row_counts(db)
    data = await api.data(CREATE, {"input": {"name": "x", "workspace": "nope"}}, token=writer)
    assert data["createTaskType"]["__typename"] == "NotFound"
    assert await row_counts(db) == before


async def test_reader_cannot_create(api: Api, db: Database) -> None:
    _, reader = await make_token(db, role=TokenRole.READER)
    before = await row_counts(db)
    status, errors = await api.errors(CREATE, {"input": {"name": "x"}}, token=reader)
    assert (status, errors[0]["extensions"]["code"]) == (403, "FORBIDDEN")
    assert await row_counts(db) == before


async def test_new_revision_keeps_the_old_one_unchanged(api: Api, db: Database) -> None:
    writer = await _writer(db)
    created = await api.data(
        CREATE,
        {"input": {"name": "resize", "parametersSchema": SCHEMA, "timeoutSeconds": 60}},
        token=writer,
    )
    tt_id = created["createTaskType"]["taskType"]["id"]
    new_schema = {**SCHEMA, "required": ["url"]}
    data = await api.data(
        REVISE,
        {"input": {"taskType": tt_id, "parametersSchema": new_schema, "timeoutSeconds": None}},
        token=writer,
    )
    revision = data["createTaskTypeRevision"]["revision"]
    assert revision["revision"] == 2
    assert revision["parametersSchema"] == new_schema
    assert revision["timeoutSeconds"] is None  # null clears a nullable field
    assert revision["implementation"] == "external"  # unchanged fields carried over
    assert revision["taskType"]["latestRevision"] == 2

    query = """query($id: ID!) { node(id: $id) { ... on TaskType {
        one: revision(number: 1) { parametersSchema timeoutSeconds }
        three: revision(number: 3) { revision }
        revisions { totalCount edges { node { revision } } } } } }"""
    node = (await api.data(query, {"id": tt_id}, token=writer))["node"]
    assert node["one"] == {"parametersSchema": SCHEMA, "timeoutSeconds": 60}
    assert node["three"] is None
    assert node["revisions"]["totalCount"] == 2
    assert [e["node"]["revision"] for e in node["revisions"]["edges"]] == [1, 2]


async def test_revision_that_changes_nothing_or_breaks_a_schema_is_refused(
    api: Api, db: Database
) -> None:
    writer = await _writer(db)
    tt = await make_task_type(db, "resize", parameters_schema=SCHEMA)
    tt_id = _gid("TaskType", tt.id)
    before = await row_counts(db)
    same = await api.data(
        REVISE, {"input": {"taskType": tt_id, "parametersSchema": SCHEMA}}, token=writer
    )
    assert same["createTaskTypeRevision"]["__typename"] == "ValidationFailed"
    assert same["createTaskTypeRevision"]["violations"][0]["path"] == "$"
    broken = await api.data(
        REVISE, {"input": {"taskType": tt_id, "resultSchema": {"type": 5}}}, token=writer
    )
    assert broken["createTaskTypeRevision"]["violations"][0]["path"] == "$.resultSchema.type"
    nulled = await api.data(
        REVISE,
        {"input": {"taskType": tt_id, "description": None, "maxAttempts": None}},
        token=writer,
    )
    assert sorted(v["path"] for v in nulled["createTaskTypeRevision"]["violations"]) == [
        "$.description",
        "$.maxAttempts",
    ]
    assert await row_counts(db) == before


async def test_revision_of_unknown_task_type_is_not_found(api: Api, db: Database) -> None:
    writer = await _writer(db)
    data = await api.data(
        REVISE,
        {"input": {"taskType": _gid("TaskType", 4242), "description": "x"}},
        token=writer,
    )
    assert data["createTaskTypeRevision"]["__typename"] == "NotFound"


AVAILABILITY = """mutation($id: ID!, $available: Boolean!) {
  setTaskTypeAvailability(taskType: $id, available: $available) {
    __typename ... on TaskTypeUpdated { taskType { available } } ... on Error { code } } }"""
CHECK_IN = """mutation($id: ID!) { checkInTaskType(taskType: $id) {
    __typename ... on TaskTypeUpdated { taskType { available lastCheckInAt hasTimedOut } }
    ... on Error { code } } }"""


async def test_availability_and_check_in(api: Api, db: Database) -> None:
    writer = await _writer(db)
    _, worker = await make_token(db, role=TokenRole.WORKER)
    tt_id = _gid("TaskType", (await make_task_type(db, "resize")).id)

    on = await api.data(AVAILABILITY, {"id": tt_id, "available": True}, token=writer)
    assert on["setTaskTypeAvailability"]["taskType"]["available"] is True
    off = await api.data(AVAILABILITY, {"id": tt_id, "available": False}, token=writer)
    assert off["setTaskTypeAvailability"]["taskType"]["available"] is False

    first = (await api.data(CHECK_IN, {"id": tt_id}, token=worker))["checkInTaskType"]
    assert first["taskType"]["available"] is True
    assert first["taskType"]["hasTimedOut"] is False
    second = (await api.data(CHECK_IN, {"id": tt_id}, token=worker))["checkInTaskType"]
    # A check-in resets the clock even when it changes nothing else.
    assert second["taskType"]["lastCheckInAt"] > first["taskType"]["lastCheckInAt"]

    # Workers may check in but not change availability.
    status, errors = await api.errors(AVAILABILITY, {"id": tt_id, "available": True}, token=worker)
    assert (status, errors[0]["extensions"]["code"]) == (403, "FORBIDDEN")


async def test_check_in_needs_a_token(api: Api, db: Database) -> None:
    tt_id = _gid("TaskType", (await make_task_type(db, "resize")).id)
    status, errors = await api.errors(CHECK_IN, {"id": tt_id})
    assert (status, errors[0]["extensions"]["code"]) == (401, "UNAUTHENTICATED")


async def test_has_timed_out_when_never_checked_in_past_the_timeout(api: Api, db: Database) -> None:
    _, reader = await make_token(db, role=TokenRole.READER)
    async with db.engine.begin() as conn:
        from sqlalchemy import text

        await make_task_type(db, "old", check_in_timeout_seconds=5)
        await conn.execute(
            text(
                "UPDATE task_type SET created_at = now() - interval '6 seconds' WHERE name = 'old'"
            )
        )
    await make_task_type(db, "new", check_in_timeout_seconds=5)
    data = await api.data("""{ taskTypes { edges { node { name hasTimedOut } } } }""", token=reader)
    assert {e["node"]["name"]: e["node"]["hasTimedOut"] for e in data["taskTypes"]["edges"]} == {
        "new": False,
        "old": True,
    }


VALIDATE = """query($id: ID!, $p: JSON!, $rev: Int) {
  validateParameters(taskType: $id, parameters: $p, revision: $rev) {
    __typename
    ... on ParameterValidation { isValid revision { revision } violations { path message } }
    ... on NotFound { code message } } }"""


async def test_validate_parameters_reports_each_violation_with_its_path(
    api: Api, db: Database
) -> None:
    _, reader = await make_token(db, role=TokenRole.READER)
    tt_id = _gid("TaskType", (await make_task_type(db, "resize", parameters_schema=SCHEMA)).id)
    ok = await api.data(VALIDATE, {"id": tt_id, "p": {"url": "u", "width": 3}}, token=reader)
    assert ok["validateParameters"] == {
        "__typename": "ParameterValidation",
        "isValid": True,
        "revision": {"revision": 1},
        "violations": [],
    }
    bad = await api.data(VALIDATE, {"id": tt_id, "p": {"width": 0}}, token=reader)
    result = bad["validateParameters"]
    assert result["isValid"] is False
    assert sorted(v["path"] for v in result["violations"]) == ["$", "$.width"]
    not_object = await api.data(VALIDATE, {"id": tt_id, "p": [1]}, token=reader)
    assert not_object["validateParameters"]["violations"] == [
        {"path": "$", "message": "parameters must be a JSON object"}
    ]


async def test_validate_parameters_unknown_type_or_revision_is_not_found(
    api: Api, db: Database
) -> None:
    _, reader = await make_token(db, role=TokenRole.READER)
    tt_id = _gid("TaskType", (await make_task_type(db, "resize")).id)
    missing_rev = await api.data(VALIDATE, {"id": tt_id, "p": {}, "rev": 7}, token=reader)
    assert missing_rev["validateParameters"]["__typename"] == "NotFound"
    missing_type = await api.data(VALIDATE, {"id": _gid("TaskType", 999), "p": {}}, token=reader)
    assert missing_type["validateParameters"]["code"] == "NOT_FOUND"


async def test_private_workspace_is_invisible_to_anonymous_callers(api: Api, db: Database) -> None:
    await make_workspace(db, "open", public=True)
    await make_task_type(db, "visible", workspace="open")
    hidden = await make_task_type(db, "hidden")  # in the private default workspace
    data = await api.data(
        """query($id: ID!) { taskTypes { totalCount edges { node { name } } }
           hiddenNode: node(id: $id) { id }
           taskType(name: "hidden") { name }
           workspaces { edges { node { name } } } }""",
        {"id": _gid("TaskType", hidden.id)},
    )
    assert data["taskTypes"]["totalCount"] == 1
    assert [e["node"]["name"] for e in data["taskTypes"]["edges"]] == ["visible"]
    assert data["hiddenNode"] is None
    assert data["taskType"] is None
    assert [e["node"]["name"] for e in data["workspaces"]["edges"]] == ["open"]
    check = await api.data(VALIDATE, {"id": _gid("TaskType", hidden.id), "p": {}})
    assert check["validateParameters"]["__typename"] == "NotFound"


def _gid(type_name: str, pk: int) -> str:
    import base64

    return base64.b64encode(f"{type_name}:{pk}".encode()).decode()
