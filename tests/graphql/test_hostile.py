"""Hostile documents are refused before they cost anything (issue 7 §1): no SQL, coded
LIMIT_EXCEEDED, and the process keeps answering. Timings are in bench/hostile.py."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import httpx
import pytest
from graphql import get_introspection_query

from db.enums import TokenRole
from db.session import Database
from graphql_api.app import create_app
from graphql_api.settings import ApiSettings, Limits
from jobs.broker import build_broker
from jobs.dispatch import DramatiqDispatcher
from tests.conftest import StatementCounter
from tests.factories import make_token
from tests.graphql.conftest import SETTINGS

LIMITS = Limits()


def fragment_bomb(levels: int) -> str:
    """Each fragment spreads the next one twice: 2**levels spreads written out."""
    chain = [f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}" for i in range(levels)]
    return (
        "query B { ...F0 } "
        + " ".join(chain)
        + f" fragment F{levels} on Query {{ viewer {{ role }} }}"
    )


def repeated(copies: int, name: str) -> str:
    return f"query {name} {{ " + " ".join(["viewer { role }"] * copies) + " }"


def expensive(aliases: int) -> str:
    tree = "batches(first: 100) { edges { node { jobs(first: 100) { edges { node {"
    tree += " events(first: 100) { edges { node { toStatus } } } } } } } } }"
    return "{ " + " ".join(f"a{i}: {tree}" for i in range(aliases)) + " }"


async def refused_without_sql(
    client: httpx.AsyncClient, counter: StatementCounter, body: Any
) -> list[dict[str, Any]]:
    before = counter.count
    response = await client.post("/graphql", json=body)
    assert response.status_code in (400, 413), response.text
    assert counter.count == before, counter.statements[before:]
    errors: list[dict[str, Any]] = (
        [e for r in response.json() for e in r["errors"]]
        if isinstance(response.json(), list)
        else response.json()["errors"]
    )
    assert errors
    assert all(e["extensions"]["code"] == "LIMIT_EXCEEDED" for e in errors), errors
    health = await client.get("/healthz")
    assert health.status_code == 200
    return errors


async def test_fragment_bomb_is_refused_before_validation(
    client: httpx.AsyncClient, sql_counter: StatementCounter
) -> None:
    [error] = await refused_without_sql(client, sql_counter, {"query": fragment_bomb(41)})
    assert "Fragments spread fragments" in error["message"]


async def test_shorter_fragment_bombs_are_cheap_and_answered(client: httpx.AsyncClient) -> None:
    """Within the nesting limit, a spread twice counts once (execution merges it)."""
    response = await client.post("/graphql", json={"query": fragment_bomb(20)})
    assert response.status_code == 200
    assert response.json()["data"] == {"viewer": {"role": None}}


async def test_repeated_fields_in_batched_operations(
    client: httpx.AsyncClient, sql_counter: StatementCounter
) -> None:
    body = [{"query": repeated(400, f"Q{i}")} for i in range(LIMITS.max_batch_operations)]
    errors = await refused_without_sql(client, sql_counter, body)
    assert len(errors) == LIMITS.max_batch_operations
    assert "selected 400 times" in errors[0]["message"]


async def test_too_many_fragments_in_one_selection_set(
    client: httpx.AsyncClient, sql_counter: StatementCounter
) -> None:
    count = LIMITS.max_fragment_spreads + 1
    fragments = " ".join(
        f"fragment G{i} on Query {{ a{i}: viewer {{ role }} }}" for i in range(count)
    )
    query = "{ " + " ".join(f"...G{i}" for i in range(count)) + " } " + fragments
    [error] = await refused_without_sql(client, sql_counter, {"query": query})
    assert "fragments are spread" in error["message"]


async def test_expensive_document_is_refused_with_its_cost(
    client: httpx.AsyncClient, sql_counter: StatementCounter
) -> None:
    # 30 aliases of 100 batches × 100 jobs × 100 events: 30 × 1,010,100 objects.
    [error] = await refused_without_sql(client, sql_counter, {"query": expensive(30)})
    assert error["extensions"]["cost"] == {"requested": 30 * 1_010_100, "maximum": LIMITS.max_cost}


async def test_ten_expensive_operations_in_one_batch(
    client: httpx.AsyncClient, sql_counter: StatementCounter
) -> None:
    body = [{"query": expensive(1)} for _ in range(LIMITS.max_batch_operations)]
    errors = await refused_without_sql(client, sql_counter, body)
    assert len(errors) == LIMITS.max_batch_operations


async def test_operations_of_one_batch_share_one_maximum(client: httpx.AsyncClient) -> None:
    # 8,020 objects each (batches(first: 100) × jobs(first: 80) … ): two fit, three do not.
    query = "{ batches(first: 100) { edges { node { jobs(first: 79) { totalCount } } } } }"
    response = await client.post("/graphql", json=[{"query": query}] * 3)
    results = response.json()
    assert [r.get("data") is not None for r in results] == [True, True, False]
    assert results[0]["extensions"]["cost"]["requested"] == 100 + 100 * 79
    assert results[2]["errors"][0]["extensions"]["code"] == "LIMIT_EXCEEDED"


@pytest.mark.parametrize("where", ["comment", "string"])
async def test_huge_comment_or_string_under_the_body_limit(
    client: httpx.AsyncClient, sql_counter: StatementCounter, where: str
) -> None:
    padding = "x" * 15_000_000
    query = (
        f"{{ __typename }} #{padding}"
        if where == "comment"
        else f'{{ workspace(name: "{padding}") {{ id }} }}'
    )
    [error] = await refused_without_sql(client, sql_counter, {"query": query})
    assert f"at most {LIMITS.max_query_chars:,}" in error["message"]
    # A batch with one such document among others is refused as a whole.
    batch = [{"query": "{ __typename }"}, {"query": query}]
    [error] = await refused_without_sql(client, sql_counter, batch)
    assert error["message"].startswith(f"The document has {len(query):,} characters")


async def test_integral_floats_cost_what_they_ask_for(
    client: httpx.AsyncClient, sql_counter: StatementCounter
) -> None:
    # graphql-core takes 100.0 for an Int: the cost rule must count it as 100.
    query = """query($n: Int, $m: Int) { batches(first: $n) { edges { node {
        jobs(first: $m) { edges { node { events(first: $m) { totalCount } } } } } } } }"""
    body = {"query": query, "variables": {"n": 100.0, "m": 100.0}}
    [error] = await refused_without_sql(client, sql_counter, body)
    assert error["extensions"]["cost"]["requested"] == 100 + 100 * 100 + 100 * 100 * 100
    small = await client.post("/graphql", json={**body, "variables": {"n": 3.0, "m": 1}})
    assert small.json()["extensions"]["cost"]["requested"] == 3 + 3 + 3


async def test_answered_requests_report_their_cost(client: httpx.AsyncClient) -> None:
    query = """query($n: Int) { batches(first: $n) { edges { node {
        jobs(first: 10) { edges { node { id taskType { name } } } } } } } }"""
    response = await client.post("/graphql", json={"query": query, "variables": {"n": 20}})
    # 20 batches; 20 × 10 jobs; 200 task types
    assert response.json()["extensions"]["cost"]["requested"] == 20 + 200 + 200
    defaulted = await client.post("/graphql", json={"query": "{ batches { totalCount } }"})
    assert defaulted.json()["extensions"]["cost"]["requested"] == LIMITS.default_page_size


async def test_introspection_obeys_the_cost_rule(
    client: httpx.AsyncClient, sql_counter: StatementCounter
) -> None:
    graphiql = await client.post("/graphql", json={"query": get_introspection_query()})
    assert graphiql.status_code == 200
    cost = graphiql.json()["extensions"]["cost"]["requested"]
    assert 1_000 < cost <= LIMITS.max_cost
    tree = "__schema { types { fields { args { type { name } } type { name } } } }"
    query = "{ " + " ".join(f"i{i}: {tree}" for i in range(LIMITS.max_aliases)) + " }"
    [error] = await refused_without_sql(client, sql_counter, {"query": query})
    assert error["extensions"]["cost"]["requested"] > LIMITS.max_cost


# --- the budget of points ---------------------------------------------------


@pytest.fixture
async def budget_client(db: Database) -> Any:
    settings = replace(SETTINGS, rate_limit_enabled=True, rate_limit_points=5)
    app = create_app(
        settings=settings,
        db=db,
        dispatcher=DramatiqDispatcher(build_broker("redis://127.0.0.1:1/0")),
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        yield c


async def test_rate_limit_spends_points_and_answers_429(
    budget_client: httpx.AsyncClient, db: Database
) -> None:
    remaining = []
    for _ in range(5):
        ok = await budget_client.post("/graphql", json={"query": "{ viewer { role } }"})
        assert ok.status_code == 200
        assert ok.headers["x-ratelimit-limit"] == "5"
        remaining.append(int(ok.headers["x-ratelimit-remaining"]))
        assert ok.json()["extensions"]["cost"]["pointsRemaining"] == remaining[-1]
    assert remaining == [4, 3, 2, 1, 0]
    refused = await budget_client.post("/graphql", json={"query": "{ viewer { role } }"})
    assert refused.status_code == 429
    assert refused.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
    assert int(refused.headers["retry-after"]) >= 1
    # Another caller (a token) has its own budget.
    _, secret = await make_token(db, role=TokenRole.READER)
    other = await budget_client.post(
        "/graphql",
        json={"query": "{ viewer { role } }"},
        headers={"authorization": f"Bearer {secret}"},
    )
    assert other.status_code == 200


async def test_an_operation_dearer_than_the_budget_left_is_refused(
    budget_client: httpx.AsyncClient,
) -> None:
    # 600 objects: 6 points, more than the whole budget of 5.
    query = "{ batches(first: 100) { edges { node { jobs(first: 5) { totalCount } } } } }"
    response = await budget_client.post("/graphql", json={"query": query})
    assert response.status_code == 429
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "RATE_LIMITED"
    assert error["extensions"]["cost"] == {"requested": 600, "inputValues": 0, "points": 6}


async def test_rate_limit_can_be_switched_off(db: Database) -> None:
    settings: ApiSettings = replace(SETTINGS, rate_limit_enabled=False)
    app = create_app(
        settings=settings,
        db=db,
        dispatcher=DramatiqDispatcher(build_broker("redis://127.0.0.1:1/0")),
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        response = await c.post("/graphql", json={"query": "{ viewer { role } }"})
    assert response.status_code == 200
    assert "x-ratelimit-remaining" not in response.headers
    assert "points" not in response.json()["extensions"]["cost"]
