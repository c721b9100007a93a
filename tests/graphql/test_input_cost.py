"""Points grow with what an operation is sent, not only with its answer (attacker review).

Before: an anonymous validateBatch of 100,000 inputs cost 1 point for ~2 s of CPU,
and four of them in one batched request 4 points for 5 s.
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from typing import Any

import httpx
import pytest

from db.enums import TokenRole
from db.session import Database
from graphql_api.app import create_app
from graphql_api.ratelimit import INPUT_VALUES_PER_POINT
from graphql_api.settings import Limits
from jobs.broker import build_broker
from jobs.dispatch import DramatiqDispatcher
from tests.conftest import StatementCounter
from tests.factories import RESIZE_SCHEMA, make_task_type, make_token, make_workspace
from tests.graphql.conftest import SETTINGS

VALIDATE = """query($input: BatchInput!) { validateBatch(input: $input) {
  ... on BatchValidation { isValid plannedRecipes } } }"""
ANONYMOUS_CAP = Limits().max_anonymous_input_values


def batch(items: int, workspace: str = "open") -> dict[str, Any]:
    """A generated batch: ``items`` input items of three values each (object, url, width)."""
    return {
        "input": {
            "title": "generated",
            "workspace": workspace,
            "definition": {
                "recipe": {"nodes": [{"name": "resize", "taskType": "resize"}]},
                "inputs": [{"url": f"https://x/{i}.png", "width": 10} for i in range(items)],
            },
        }
    }


def cost_of(body: dict[str, Any]) -> dict[str, Any]:
    cost: dict[str, Any] = body["extensions"]["cost"]
    return cost


@pytest.fixture
async def world(db: Database) -> str:
    """A public workspace with a task type; the writer's token."""
    await make_workspace(db, "open", public=True)
    await make_task_type(db, "resize", workspace="open", parameters_schema=RESIZE_SCHEMA)
    return (await make_token(db, role=TokenRole.WRITER, owner="wes"))[1]


def _client(db: Database, **settings: Any) -> httpx.AsyncClient:
    app = create_app(
        settings=replace(SETTINGS, **settings),
        db=db,
        dispatcher=DramatiqDispatcher(build_broker("redis://127.0.0.1:1/0")),
    )
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


async def test_a_legitimate_batch_of_100000_items_pays_for_its_inputs_and_fits(
    client: httpx.AsyncClient, world: str
) -> None:
    response = await client.post(
        "/graphql", json={"query": VALIDATE, "variables": batch(100_000)}, headers=_auth(world)
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["data"]["validateBatch"] == {"isValid": True, "plannedRecipes": 100_000}
    cost = cost_of(body)
    assert 300_000 < cost["inputValues"] < 300_020
    assert cost["points"] == 1 + cost["inputValues"] // INPUT_VALUES_PER_POINT  # 1,500
    assert cost["points"] < SETTINGS.rate_limit_points  # within one minute's budget
    assert int(response.headers["x-ratelimit-remaining"]) == cost["pointsRemaining"]


async def test_each_operation_of_a_batched_request_pays_for_its_own_inputs(
    client: httpx.AsyncClient, world: str
) -> None:
    operations = [{"query": VALIDATE, "variables": batch(5_000)} for _ in range(4)]
    response = await client.post("/graphql", json=operations, headers=_auth(world))
    assert response.status_code == 200, response.text
    costs = [cost_of(answer) for answer in response.json()]
    assert all(c["points"] == 1 + c["inputValues"] // INPUT_VALUES_PER_POINT for c in costs)
    assert all(c["points"] > 70 for c in costs)  # 15,000 values each: 76 points, not 1
    for earlier, later in itertools.pairwise(costs):
        assert later["pointsRemaining"] == earlier["pointsRemaining"] - later["points"]


async def test_small_inputs_add_nothing(client: httpx.AsyncClient, world: str) -> None:
    response = await client.post(
        "/graphql", json={"query": VALIDATE, "variables": batch(3)}, headers=_auth(world)
    )
    assert cost_of(response.json())["points"] == 1


async def test_anonymous_callers_may_send_a_bounded_input_and_no_more(
    client: httpx.AsyncClient, world: str, sql_counter: StatementCounter
) -> None:
    fits = batch((ANONYMOUS_CAP - 20) // 3)
    ok = await client.post("/graphql", json={"query": VALIDATE, "variables": fits})
    assert ok.status_code == 200
    assert ok.json()["data"]["validateBatch"]["isValid"] is True

    before = sql_counter.count
    refused = await client.post(
        "/graphql", json={"query": VALIDATE, "variables": batch(ANONYMOUS_CAP // 3 + 1)}
    )
    assert sql_counter.count == before, sql_counter.statements[before:]
    body = refused.json()
    assert body["data"] is None
    [error] = body["errors"]
    assert error["extensions"]["code"] == "LIMIT_EXCEEDED"
    assert error["extensions"]["inputValues"]["maximum"] == ANONYMOUS_CAP
    assert error["extensions"]["inputValues"]["requested"] > ANONYMOUS_CAP
    assert (await client.get("/healthz")).status_code == 200

    # The same document with a token is answered.
    with_token = await client.post(
        "/graphql",
        json={"query": VALIDATE, "variables": batch(ANONYMOUS_CAP // 3 + 1)},
        headers=_auth(world),
    )
    assert with_token.json()["data"]["validateBatch"]["isValid"] is True


async def test_an_input_dearer_than_the_budget_left_is_rate_limited(
    db: Database, world: str
) -> None:
    async with _client(db, rate_limit_points=50) as c:
        response = await c.post(
            "/graphql", json={"query": VALIDATE, "variables": batch(5_000)}, headers=_auth(world)
        )
    assert response.status_code == 429
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "RATE_LIMITED"
    cost = error["extensions"]["cost"]
    assert cost["points"] == 1 + cost["inputValues"] // INPUT_VALUES_PER_POINT > 50


def _auth(secret: str) -> dict[str, str]:
    return {"authorization": f"Bearer {secret}"}
