"""Request limits: depth, aliases, tokens, batch size, body size; introspection."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx

from db.session import Database
from graphql_api.settings import Limits
from tests.conftest import row_counts
from tests.factories import make_token
from tests.graphql.conftest import Api

LIMITS = Limits()


def _deep(levels: int) -> str:
    inner = "name"
    for _ in range(levels):
        inner = f"taskTypes {{ edges {{ node {{ workspace {{ {inner} }} }} }} }}"
    return f"{{ workspaces {{ edges {{ node {{ {inner} }} }} }} }}"


async def test_over_deep_query_is_refused(api: Api, db: Database) -> None:
    status, errors = await api.errors(_deep(4))
    assert status == 400
    assert errors[0]["extensions"]["code"] == "LIMIT_EXCEEDED"
    assert "depth" in errors[0]["message"]


async def test_query_within_depth_runs(api: Api, db: Database) -> None:
    data = await api.data(_deep(1))
    assert data["workspaces"]["edges"] == []  # anonymous: no public workspaces


async def test_too_many_aliases(api: Api, db: Database) -> None:
    fields = " ".join(f"a{i}: viewer {{ authenticated }}" for i in range(LIMITS.max_aliases + 1))
    status, errors = await api.errors(f"{{ {fields} }}")
    assert (status, errors[0]["extensions"]["code"]) == (400, "LIMIT_EXCEEDED")


async def test_too_many_tokens(api: Api, db: Database) -> None:
    fields = " ".join(["__typename"] * (LIMITS.max_tokens + 10))
    status, errors = await api.errors(f"{{ {fields} }}")
    assert (status, errors[0]["extensions"]["code"]) == (400, "LIMIT_EXCEEDED")


async def test_batched_requests_are_capped(client: httpx.AsyncClient, db: Database) -> None:
    ok = await client.post("/graphql", json=[{"query": "{ viewer { authenticated } }"}] * 2)
    assert ok.status_code == 200
    assert [r["data"]["viewer"]["authenticated"] for r in ok.json()] == [False, False]
    over = [{"query": "{ __typename }"}] * (LIMITS.max_batch_operations + 1)
    refused = await client.post("/graphql", json=over)
    assert refused.status_code == 400
    assert refused.json()["errors"][0]["extensions"]["code"] == "LIMIT_EXCEEDED"


async def test_oversized_body_is_refused_before_anything_runs(
    client: httpx.AsyncClient, db: Database
) -> None:
    _, admin = await make_token(db)
    before = await row_counts(db)
    padding = "#" * (LIMITS.max_body_bytes + 1)
    query = f'mutation {{ createWorkspace(input: {{name: "big"}}) {{ __typename }} }} {padding}'
    response = await client.post(
        "/graphql", json={"query": query}, headers={"authorization": f"Bearer {admin}"}
    )
    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"]["code"] == "LIMIT_EXCEEDED"
    assert await row_counts(db) == before


async def test_introspection_is_on_by_default(api: Api, db: Database) -> None:
    data = await api.data("{ __schema { queryType { name } } }")
    assert data["__schema"]["queryType"]["name"] == "Query"


async def test_introspection_can_be_switched_off(db: Database) -> None:
    from dataclasses import replace

    from graphql_api.app import create_app
    from jobs.broker import build_broker
    from jobs.dispatch import DramatiqDispatcher
    from tests.graphql.conftest import SETTINGS

    app = create_app(
        settings=replace(SETTINGS, introspection=False),
        db=db,
        dispatcher=DramatiqDispatcher(build_broker("redis://127.0.0.1:1/0")),
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        refused = await c.post("/graphql", json={"query": "{ __schema { types { name } } }"})
        allowed = await c.post("/graphql", json={"query": "{ viewer { authenticated } }"})
    assert refused.status_code == 400
    assert refused.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    assert "introspection" in refused.json()["errors"][0]["message"].lower()
    assert allowed.json()["data"] == {"viewer": {"authenticated": False}}


async def test_oversized_body_without_a_length_is_refused_too(
    client: httpx.AsyncClient, db: Database
) -> None:
    # Sent in chunks (no content-length): the limit is found while reading, by the view
    # or by the lane of prepared reads (graphql_api.prepared).
    _, admin = await make_token(db)
    piece = b"#" * 1_048_576

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"query": "{ viewer { role } }'
        for _ in range(LIMITS.max_body_bytes // len(piece) + 1):
            yield piece
        yield b'"}'

    for _ in range(2):  # the second time the document is known to the lane
        response = await client.post(
            "/graphql",
            content=chunks(),
            headers={"authorization": f"Bearer {admin}", "content-type": "application/json"},
        )
        assert response.status_code == 413, response.text
        assert response.json()["errors"][0]["extensions"]["code"] == "LIMIT_EXCEEDED"
        ok = await client.post(
            "/graphql",
            json={"query": "{ viewer { role } }"},
            headers={"authorization": f"Bearer {admin}"},
        )
        assert ok.status_code == 200
