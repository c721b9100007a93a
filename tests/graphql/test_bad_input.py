"""No 500s for bad input (issue 7 §2): each reproduction gets a coded 4xx (or a payload's
error arm), writes nothing, carries a request id, and logs no error."""

from __future__ import annotations

import base64
import logging
from typing import Any

import httpx
import pytest

from db.enums import TokenRole
from db.session import Database
from tests.conftest import row_counts
from tests.factories import make_batch, make_task_type, make_token

ONE_NODE = {"recipe": {"nodes": [{"name": "n", "taskType": "t"}]}, "inputs": [{}, {}]}


def gid(kind: str, pk: int) -> str:
    return base64.b64encode(f"{kind}:{pk}".encode()).decode()


@pytest.fixture
async def admin(db: Database) -> str:
    await make_task_type(db, "t")
    return (await make_token(db, role=TokenRole.ADMIN))[1]


async def refused(
    client: httpx.AsyncClient,
    db: Database,
    caplog: pytest.LogCaptureFixture,
    *,
    token: str | None = None,
    json: Any = None,
    content: bytes | None = None,
    method: str = "POST",
    params: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any]]:
    """Send one bad request; check what every refusal must hold; return (status, error)."""
    before = await row_counts(db)
    headers = {"authorization": f"Bearer {token}"} if token else {}
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        if method == "GET":
            response = await client.get("/graphql", params=params, headers=headers)
        elif content is not None:
            headers["content-type"] = "application/json"
            response = await client.post("/graphql", content=content, headers=headers)
        else:
            response = await client.post("/graphql", json=json, headers=headers)
    assert 400 <= response.status_code < 500, response.text
    assert response.headers["content-type"].startswith("application/json"), response.text
    body = response.json()
    error = body["errors"][0]
    assert error["extensions"]["code"] in {"BAD_REQUEST", "LIMIT_EXCEEDED", "NOT_FOUND"}, body
    assert error["extensions"]["requestId"] == response.headers["x-request-id"]
    assert "Traceback" not in response.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    assert await row_counts(db) == before
    return response.status_code, error


async def test_json_nested_1000_deep_in_variables(
    client: httpx.AsyncClient, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    nested = b"[" * 1000 + b"]" * 1000
    body = b'{"query": "query($v: JSON!) { __typename }", "variables": {"v": ' + nested + b"}}"
    status, error = await refused(client, db, caplog, content=body)
    assert status == 400
    assert "nested" in error["message"]


async def test_json_nested_under_the_decoder_limit_but_over_ours(
    client: httpx.AsyncClient, db: Database, caplog: pytest.LogCaptureFixture, admin: str
) -> None:
    deep: Any = "x"
    for _ in range(200):
        deep = {"a": deep}
    definition = {**ONE_NODE, "inputs": [deep]}
    await refused(
        client,
        db,
        caplog,
        token=admin,
        json={
            "query": 'mutation($d: JSON) { createBatch(input: {title: "t", definition: $d}) '
            "{ __typename } }",
            "variables": {"d": definition},
        },
    )


@pytest.mark.parametrize(
    ("query", "variables"),
    [
        (
            "mutation($t: String!) { createBatch(input: {title: $t, definition: {recipe: {nodes:"
            ' [{name: "n", taskType: "t"}]}, inputs: [{}]}}) { __typename } }',
            {"t": "\ud800"},
        ),
        ("query($n: String!) { workspace(name: $n) { id } }", {"n": "a\udfffb"}),
        (
            "mutation($id: ID!, $r: String) { cancelBatch(id: $id, reason: $r) { __typename } }",
            {"id": gid("Batch", 1), "r": "\ud83d"},
        ),
    ],
)
async def test_lone_surrogates_are_refused_at_the_door(
    client: httpx.AsyncClient,
    db: Database,
    caplog: pytest.LogCaptureFixture,
    admin: str,
    query: str,
    variables: dict[str, Any],
) -> None:
    await make_batch(db, ONE_NODE)
    # httpx refuses to encode a lone surrogate: send the JSON escape as a client would.
    import json

    raw = json.dumps({"query": query, "variables": variables}, ensure_ascii=True).encode()
    status, error = await refused(client, db, caplog, token=admin, content=raw)
    assert (status, error["extensions"]["code"]) == (400, "BAD_REQUEST")
    assert "surrogate" in error["message"]


async def test_lone_surrogate_escape_in_a_graphql_literal(
    client: httpx.AsyncClient, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    status, _ = await refused(
        client, db, caplog, json={"query": '{ workspace(name: "\\ud800") { id } }'}
    )
    assert status == 400


@pytest.mark.parametrize(
    "query",
    [
        '{ workspace(name: "a\\u{0}b") { name } }',
        '{ taskTypes(workspace: "a\\u{00}") { totalCount } }',
        'mutation { createWorkspace(input: {name: "x\\u{000}"}) { __typename } }',
    ],
)
async def test_nul_by_graphqls_own_escape_in_a_literal(
    client: httpx.AsyncClient, db: Database, caplog: pytest.LogCaptureFixture, query: str
) -> None:
    _, admin = await make_token(db)
    status, error = await refused(client, db, caplog, token=admin, json={"query": query})
    assert status == 400
    assert error["extensions"]["code"] == "BAD_REQUEST"
    assert "NUL" in error["message"]


@pytest.mark.parametrize("number", [b"NaN", b"Infinity", b"-Infinity", b"1e400"])
@pytest.mark.parametrize("where", ["inputs", "validate", "dryRun"])
async def test_non_finite_numbers_in_json_inputs(
    client: httpx.AsyncClient,
    db: Database,
    caplog: pytest.LogCaptureFixture,
    admin: str,
    number: bytes,
    where: str,
) -> None:
    query = {
        "inputs": b'mutation($d: JSON) { createBatch(input: {title: \\"t\\", definition: $d})'
        b" { __typename } }",
        "validate": b'query($d: JSON) { validateBatch(input: {title: \\"t\\", definition: $d})'
        b" { __typename ... on BatchValidation { isValid } } }",
        "dryRun": b'mutation($d: JSON) { createBatch(dryRun: true, input: {title: \\"t\\",'
        b" definition: $d}) { __typename } }",
    }[where]
    definition = (
        b'{"recipe": {"nodes": [{"name": "n", "taskType": "t"}]}, "inputs": [{"x": '
        + number
        + b"}]}"
    )
    body = b'{"query": "' + query + b'", "variables": {"d": ' + definition + b"}}"
    status, _ = await refused(client, db, caplog, token=admin, content=body)
    assert status == 400


@pytest.mark.parametrize("literal", ["1e400", "-1e400", "9" * 5000])
async def test_unusable_number_literals_in_documents(
    client: httpx.AsyncClient,
    db: Database,
    caplog: pytest.LogCaptureFixture,
    admin: str,
    literal: str,
) -> None:
    query = (
        'mutation { createBatch(input: {title: "t", definition: {recipe: {nodes: [{name: "n",'
        f' taskType: "t"}}]}}, inputs: [{{x: {literal}}}]}}}}) {{ __typename }} }}'
    )
    status, _ = await refused(client, db, caplog, token=admin, json={"query": query})
    assert status == 400
    _, error = await refused(
        client, db, caplog, json={"query": f"{{ jobs(first: {literal}) {{ totalCount }} }}"}
    )
    assert error["extensions"]["code"] == "BAD_REQUEST"


async def test_a_result_with_infinity_is_refused_before_the_worker_protocol(
    client: httpx.AsyncClient, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    body = (
        b'{"query": "mutation($r: JSON!) { completeJob(job: \\"'
        + gid("Job", 1).encode()
        + b'\\", result: $r) { __typename } }", "variables": {"r": {"v": Infinity}}}'
    )
    await refused(client, db, caplog, content=body)


@pytest.mark.parametrize(
    "content",
    [
        b'{"query": "{ viewer { role } }\xff\xfe"}',
        b'{"query": "{ viewer { role } }", "variables": {"n": ' + b"9" * 5000 + b"}}",
        b"[]",
    ],
    ids=["invalid-utf8", "5000-digit-integer", "empty-array"],
)
async def test_malformed_bodies(
    client: httpx.AsyncClient, db: Database, caplog: pytest.LogCaptureFixture, content: bytes
) -> None:
    status, error = await refused(client, db, caplog, content=content)
    assert (status, error["extensions"]["code"]) == (400, "BAD_REQUEST")


async def test_subscription_over_http_post_and_get(
    client: httpx.AsyncClient, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    query = "subscription { workerStatusChanged { name } }"
    status, error = await refused(client, db, caplog, json={"query": query})
    assert (status, error["extensions"]["code"]) == (400, "BAD_REQUEST")
    assert "websocket" in error["message"]
    status, _ = await refused(client, db, caplog, method="GET", params={"query": query})
    assert status == 400


async def test_node_with_a_type_name_that_does_not_exist_is_null(
    client: httpx.AsyncClient, db: Database
) -> None:
    response = await client.post(
        "/graphql", json={"query": f'{{ node(id: "{gid("Nope", 1)}") {{ id }} }}'}
    )
    assert response.status_code == 200
    assert response.json()["data"] == {"node": None}
    assert "errors" not in response.json()


@pytest.mark.parametrize(
    ("body", "as_variable"),
    [({"e": "2030-01-01T00:00:00"}, True), ({}, False)],
    ids=["variable", "literal"],
)
async def test_create_token_with_a_naive_datetime_is_refused(
    client: httpx.AsyncClient,
    db: Database,
    caplog: pytest.LogCaptureFixture,
    admin: str,
    body: dict[str, str],
    as_variable: bool,
) -> None:
    value = "$e" if as_variable else '"2030-01-01T00:00:00"'
    header = "($e: DateTime)" if as_variable else ""
    query = (
        f'mutation{header} {{ createToken(input: {{owner: "x", role: READER,'
        f" expiresAt: {value}}}) {{ __typename }} }}"
    )
    status, error = await refused(
        client, db, caplog, token=admin, json={"query": query, "variables": body}
    )
    assert status == 400
    assert "offset" in error["message"]


async def test_create_token_with_an_offset_works(client: httpx.AsyncClient, admin: str) -> None:
    response = await client.post(
        "/graphql",
        json={
            "query": 'mutation { createToken(input: {owner: "x", role: READER,'
            ' expiresAt: "2030-01-01T00:00:00Z"}) { ... on TokenCreated { token { expiresAt } } } }'
        },
        headers={"authorization": f"Bearer {admin}"},
    )
    token = response.json()["data"]["createToken"]["token"]
    assert token["expiresAt"].startswith("2030-01-01T00:00:00")


async def test_bad_cursor_next_to_dataloader_siblings(
    client: httpx.AsyncClient, db: Database, caplog: pytest.LogCaptureFixture, admin: str
) -> None:
    """One branch fails in a non-null position while siblings await shared DataLoader
    futures: graphql-core cancels the branch, and the shared futures used to be
    cancelled for the other branches too (a CancelledError, a plain-text 500)."""
    for _ in range(3):
        await make_batch(db, ONE_NODE)
    query = """{
      a: batches { edges { node { workspace { name } jobs(after: "bad") { totalCount } } } }
      b: batches { edges { node { workspace { name } } } }
      c: jobs { edges { node { taskType { name } batch { title } } } }
    }"""
    for _ in range(5):
        status, error = await refused(client, db, caplog, token=admin, json={"query": query})
        assert (status, error["extensions"]["code"]) == (400, "BAD_REQUEST")
        assert "cursor" in error["message"]


async def test_several_operations_without_a_name_run_none(
    client: httpx.AsyncClient, db: Database, caplog: pytest.LogCaptureFixture, admin: str
) -> None:
    """The spec's GetOperation: a request error, not the first operation (a mutation here)."""
    document = (
        'mutation M { createWorkspace(input: {name: "sneaky"}) { __typename } }'
        " query B { viewer { role } }"
    )
    status, error = await refused(client, db, caplog, token=admin, json={"query": document})
    assert (status, error["extensions"]["code"]) == (400, "BAD_REQUEST")
    assert "operationName" in error["message"]
    named = await client.post(
        "/graphql",
        json={"query": document, "operationName": "B"},
        headers={"authorization": f"Bearer {admin}"},
    )
    assert named.status_code == 200
    assert named.json()["data"]["viewer"]["role"] == "ADMIN"
