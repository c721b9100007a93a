"""HTTP surface: probes, request ids, CORS, malformed bodies, masking, schema export."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest

from db.repositories.workspace import WorkspaceRepository
from db.session import Database
from graphql_api.app import create_app
from graphql_api.schema import export_sdl
from graphql_api.settings import Limits
from jobs.broker import build_broker
from jobs.dispatch import DramatiqDispatcher
from tests.graphql.conftest import SETTINGS, Api

REPO = Path(__file__).resolve().parents[2]

LIMITS = Limits()


async def test_healthz(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


async def test_readyz_when_database_and_broker_answer(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert (response.status_code, response.json()) == (200, {"status": "ready"})


async def test_readyz_names_an_unreachable_broker(db: Database) -> None:
    dead = DramatiqDispatcher(build_broker("redis://127.0.0.1:1/0"))
    app = create_app(settings=SETTINGS, db=db, dispatcher=dead)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        response = await c.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert "broker" in body
    assert "database" not in body


async def test_every_response_has_a_request_id(client: httpx.AsyncClient) -> None:
    generated = await client.get("/healthz")
    assert len(generated.headers["x-request-id"]) == 32
    echoed = await client.get("/healthz", headers={"x-request-id": "trace-12345678"})
    assert echoed.headers["x-request-id"] == "trace-12345678"
    refused = await client.get("/healthz", headers={"x-request-id": "bad id\n"})
    assert refused.headers["x-request-id"] != "bad id\n"


async def test_cors_allows_only_configured_origins(client: httpx.AsyncClient) -> None:
    preflight = {
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization,content-type",
    }
    allowed = await client.options(
        "/graphql", headers={"origin": "http://allowed.example", **preflight}
    )
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "http://allowed.example"
    other = await client.options("/graphql", headers={"origin": "http://evil.example", **preflight})
    assert "access-control-allow-origin" not in other.headers


async def test_posts_to_graphql_pass_the_same_layers_as_every_route(
    client: httpx.AsyncClient,
) -> None:
    """POST /graphql goes straight to its layers (graphql_api.app.Front): request ids,
    CORS and the body limit hold there as on the routes Starlette serves."""
    body = {"query": "{ __typename }"}
    for send in (
        lambda h: client.post("/graphql", json=body, headers=h),
        lambda h: client.get("/graphql", params=body, headers=h),
    ):
        allowed = await send({"origin": "http://allowed.example", "x-request-id": "trace-1234567"})
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == "http://allowed.example"
        assert allowed.headers["x-request-id"] == "trace-1234567"
        assert allowed.json()["data"] == {"__typename": "Query"}
        other = await send({"origin": "http://evil.example"})
        assert "access-control-allow-origin" not in other.headers
        assert len(other.headers["x-request-id"]) == 32
    too_big = await client.post(
        "/graphql",
        content=b" " * (LIMITS.max_body_bytes + 1),
        headers={"content-type": "application/json"},
    )
    assert too_big.status_code == 413
    assert too_big.json()["errors"][0]["extensions"]["requestId"] == too_big.headers["x-request-id"]


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b"{not json", "application/json"),
        (b'"just a string"', "application/json"),
        (b'{"variables": {}}', "application/json"),
        (b'[{"query": "{ __typename }"}, "x"]', "application/json"),
        (b'{"query": "{ viewer { owner } }", "variables": [1]}', "application/json"),
    ],
)
async def test_malformed_requests_get_coded_400s(
    client: httpx.AsyncClient, content: bytes, content_type: str
) -> None:
    response = await client.post(
        "/graphql", content=content, headers={"content-type": content_type}
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"


async def test_syntax_and_validation_errors_are_bad_requests(client: httpx.AsyncClient) -> None:
    for query in ["{ viewer ", "{ noSuchField }"]:
        response = await client.post("/graphql", json={"query": query})
        assert response.status_code == 400
        assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"


async def test_unexpected_errors_are_masked_and_logged_with_the_request_id(
    resolver_api: Api,
    db: Database,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def explode(self: WorkspaceRepository, **kwargs: object) -> None:
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(WorkspaceRepository, "page", explode)  # read by the resolver
    with caplog.at_level(logging.ERROR, logger="batchgraph.errors"):
        response = await resolver_api.client.post(
            "/graphql",
            json={"query": "{ workspaces { totalCount } }"},
            headers={"x-request-id": "req-abcdef123"},
        )
    assert response.status_code == 500
    error = response.json()["errors"][0]
    assert error["extensions"] == {"code": "INTERNAL", "requestId": "req-abcdef123"}
    assert "secret internal detail" not in response.text
    assert "req-abcdef123" in caplog.text
    assert "secret internal detail" in caplog.text  # in full, server-side


async def test_partial_data_keeps_200(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/graphql", json={"query": "{ viewer { authenticated } tokens { totalCount } }"}
    )
    body = response.json()
    # tokens is non-null, so data collapses to null and the status is the error's.
    assert body["data"] is None
    assert response.status_code == 401
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_get_queries_work_and_get_mutations_do_not(client: httpx.AsyncClient) -> None:
    ok = await client.get("/graphql", params={"query": "{ viewer { authenticated } }"})
    assert ok.json()["data"] == {"viewer": {"authenticated": False}}
    refused = await client.get(
        "/graphql",
        params={"query": 'mutation { createWorkspace(input: {name: "x"}) { __typename } }'},
    )
    assert refused.status_code in (400, 405)
    assert refused.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"


def test_schema_graphql_matches_the_code() -> None:
    committed = (REPO / "schema.graphql").read_text()
    assert committed == export_sdl(), "run: batchgraph export-schema --output schema.graphql"


async def test_full_introspection_has_no_errors(client: httpx.AsyncClient) -> None:
    """What GraphiQL and code generators send; every default must be renderable."""
    from graphql import get_introspection_query

    response = await client.post("/graphql", json={"query": get_introspection_query()})
    body = response.json()
    assert "errors" not in body, body.get("errors")
    assert response.status_code == 200
    assert body["data"]["__schema"]["queryType"]["name"] == "Query"


@pytest.mark.parametrize(
    "body",
    [
        {"query": 'mutation { createWorkspace(input: {name: "a\\u0000b"}) { __typename } }'},
        {
            "query": "query($t: String!) { taskType(name: $t) { id } }",
            "variables": {"t": "x\u0000"},
        },
        {
            "query": "query($f: JobFilter) { jobs(filter: $f) { totalCount } }",
            "variables": {"f": {"node": "\u0000"}},
        },
    ],
)
async def test_nul_characters_are_refused_not_crashed_on(
    client: httpx.AsyncClient, db: Database, body: dict[str, object]
) -> None:
    response = await client.post("/graphql", json=body)
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"


async def test_forged_cursors_out_of_range_are_bad_requests(client: httpx.AsyncClient) -> None:
    import base64
    import json

    for value in (2**63, 2**70, -(2**64)):
        cursor = base64.urlsafe_b64encode(json.dumps([value]).encode()).decode().rstrip("=")
        response = await client.post(
            "/graphql", json={"query": f'{{ jobs(after: "{cursor}") {{ totalCount }} }}'}
        )
        assert response.status_code == 400, value
        assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
