"""Prepared reads (graphql_api.prepared): a document the compiled path answered whole is
answered again by the view directly. Each answer must be the one the full way gives —
the same body, status and budget headers, for every caller — and anything the lane
does not take must still get the full way's answer."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import replace
from typing import Any

import httpx
import pytest

from db.enums import TokenRole
from db.session import Database
from graphql_api import safejson
from graphql_api.app import create_app
from graphql_api.auth.authenticator import Authenticator
from graphql_api.compiled.planner import Planner
from jobs.broker import build_broker
from jobs.dispatch import DramatiqDispatcher
from tests.conftest import StatementCounter
from tests.factories import make_batch, make_task_type, make_token, make_workspace
from tests.factories import two_node_definition as definition
from tests.graphql.conftest import SETTINGS, Api
from tests.graphql.differential import both, first_difference, normalized, planner, prepared_reads

# (document, variables, operationName, SQL statements of an answer once the token is known)
READS: list[tuple[str, dict[str, Any] | None, str | None, int]] = [
    ("{ batches(first: 3) { totalCount edges { node { id title } } } }", None, None, 1),
    (
        "query($n: Int) { batches(first: $n) { edges { cursor node { title } } } }",
        {"n": 2},
        None,
        1,
    ),
    ("{ viewer { role authenticated } __typename }", None, None, 0),  # answered in Python
    ("{ workspaces { edges { node { name public } } } }", None, None, 1),
    ("query A { viewer { role } } query B { workspaces { totalCount } }", None, "B", 1),
]


def unique(query: str) -> str:
    """The document as no earlier test sent it (the prepared documents are per process)."""
    return f"{query}\n# {uuid.uuid4().hex}"


async def post(
    api: Api, query: str, variables: dict[str, Any] | None, name: str | None, token: str | None
) -> httpx.Response:
    body: dict[str, Any] = {"query": query}
    if variables is not None:
        body["variables"] = variables
    if name is not None:
        body["operationName"] = name
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return await api.client.post("/graphql", json=body, headers=headers)


@pytest.fixture
async def tokens(db: Database) -> dict[str, str | None]:
    await make_task_type(db, "resize")
    await make_task_type(db, "thumb")
    for title in ("one", "two", "three", "four"):
        await make_batch(db, definition([{"url": "u", "width": 1}]), title=title)
    await make_workspace(db, "hidden")
    await make_workspace(db, "open", public=True)
    return {
        "anonymous": None,
        "reader": (await make_token(db, role=TokenRole.READER))[1],
        "admin": (await make_token(db, role=TokenRole.ADMIN))[1],
    }


@pytest.mark.parametrize("index", range(len(READS)))
async def test_a_repeated_read_is_answered_directly_and_as_the_full_way_answers(
    api: Api,
    resolver_api: Api,
    tokens: dict[str, str | None],
    sql_counter: StatementCounter,
    index: int,
) -> None:
    text, variables, name, statements = READS[index]
    query = unique(text)
    for position, token in enumerate(tokens.values()):
        before = prepared_reads().answered
        earlier = await post(api, query, variables, name, token)
        # The first request of all goes the full way (which makes the document known);
        # every later one, of any caller, is answered directly.
        assert prepared_reads().answered - before == (0 if position == 0 else 1)
        sql_counter.statements.clear()
        again = await post(api, query, variables, name, token)
        assert prepared_reads().answered - before == (1 if position == 0 else 2)
        assert sql_counter.count == statements, sql_counter.statements
        reference = await post(resolver_api, query, variables, name, token)
        assert again.status_code == earlier.status_code == reference.status_code == 200
        a, b, c = (normalized(r.json()) for r in (again, earlier, reference))
        assert a == b == c, first_difference(a, c) or first_difference(a, b)
        assert "errors" not in a
        assert again.headers["content-type"] == earlier.headers["content-type"]
        assert again.headers["x-request-id"] != earlier.headers["x-request-id"]


async def test_each_caller_sees_only_what_it_may_read(
    api: Api, tokens: dict[str, str | None]
) -> None:
    query = unique("{ workspaces { totalCount edges { node { name } } } }")
    names: dict[str, list[str]] = {}
    for role in ("admin", "anonymous", "reader", "anonymous", "admin"):  # prepared by admin
        data = (await post(api, query, None, None, tokens[role])).json()["data"]
        found = [e["node"]["name"] for e in data["workspaces"]["edges"]]
        assert data["workspaces"]["totalCount"] == len(found)
        assert names.setdefault(role, found) == found
    assert "hidden" in names["admin"]
    assert "hidden" in names["reader"]
    assert "hidden" not in names["anonymous"]
    assert "open" in names["anonymous"]


# Prepared with the first variables, then sent with the second: over the cost maximum,
# a page over the limit, a variable of the wrong type, a bad cursor, a missing variable.
REFUSED: list[tuple[str, dict[str, Any], dict[str, Any], str]] = [
    (
        "query($n: Int, $m: Int) { batches(first: $n) { edges { node {"
        " jobs(first: $m) { edges { node { events(first: $m) { totalCount } } } } } } } }",
        {"n": 1, "m": 1},
        {"n": 100, "m": 100},
        "LIMIT_EXCEEDED",
    ),
    (
        "query($n: Int) { batches(first: $n) { totalCount } }",
        {"n": 1},
        {"n": 101},
        "LIMIT_EXCEEDED",
    ),
    (
        "query($n: Int) { batches(first: $n) { totalCount } }",
        {"n": 1},
        {"n": "many"},
        "BAD_REQUEST",
    ),
    (
        "query($c: String) { batches(after: $c) { totalCount } }",
        {"c": None},
        {"c": "%%%"},
        "BAD_REQUEST",
    ),
    ("query($n: Int!) { batches(first: $n) { totalCount } }", {"n": 1}, {}, "BAD_REQUEST"),
]


@pytest.mark.parametrize("index", range(len(REFUSED)))
async def test_what_the_lane_does_not_take_gets_the_full_ways_answer(
    api: Api, resolver_api: Api, tokens: dict[str, str | None], index: int
) -> None:
    text, prepared_with, variables, code = REFUSED[index]
    query = unique(text)
    assert (await post(api, query, prepared_with, None, tokens["reader"])).status_code == 200
    before = prepared_reads().answered
    compiled, resolved = await both(api, resolver_api, query, variables, tokens["reader"])
    assert compiled == resolved, first_difference(compiled, resolved)
    assert compiled[1]["errors"][0]["extensions"]["code"] == code
    assert prepared_reads().answered == before


async def test_bodies_that_are_not_one_plain_operation_go_the_full_way(
    api: Api, resolver_api: Api, tokens: dict[str, str | None]
) -> None:
    query = unique("{ workspaces { totalCount } }")
    assert (await post(api, query, None, None, tokens["reader"])).status_code == 200
    before = prepared_reads().answered
    headers = {"authorization": f"Bearer {tokens['reader']}"}
    sent: list[tuple[bytes | list[Any] | dict[str, Any], str]] = [
        ([{"query": query}, {"query": query}], "application/json"),  # a batch
        ({"query": query, "extensions": {"persistedQuery": {"version": 1}}}, "application/json"),
        ({"query": query, "variables": None, "unknown": 1}, "application/json"),
        ({"query": query, "variables": [1]}, "application/json"),
        ({"query": query, "operationName": 7}, "application/json"),
        (json.dumps({"query": query}).encode(), "text/plain"),
        (json.dumps({"query": query}).encode(), "APPLICATION/JSON"),
        (json.dumps({"query": query}).encode(), "application/json-seq"),
        *(({"query": query, "extensions": empty}, "application/json") for empty in ([], 0, "")),
        ({"query": query, "extensions": False}, "application/json"),
        # Both of these the lane takes:
        ({"query": query, "extensions": {}}, "application/json"),
        (json.dumps({"query": query}).encode(), "application/json; charset=latin-1"),
    ]
    for body, content_type in sent:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        answers = [
            await side.client.post(
                "/graphql", content=content, headers={**headers, "content-type": content_type}
            )
            for side in (api, resolver_api)
        ]
        ours, reference = ((r.status_code, normalized(r.json())) for r in answers)
        assert ours == reference, first_difference(ours, reference)
    assert prepared_reads().answered == before + 2


async def test_the_anonymous_input_cap_holds_on_known_documents(
    api: Api, resolver_api: Api, tokens: dict[str, str | None]
) -> None:
    query = unique("query($s: [JobStatus!]) { jobs(filter: {statuses: $s}) { totalCount } }")
    assert (await post(api, query, {"s": ["QUEUED"]}, None, None)).status_code == 200
    before = prepared_reads().answered
    many = {"s": ["QUEUED"] * 10_001}
    compiled, resolved = await both(api, resolver_api, query, many, None)
    assert compiled == resolved, first_difference(compiled, resolved)
    assert compiled[1]["errors"][0]["extensions"]["code"] == "LIMIT_EXCEEDED"
    assert prepared_reads().answered == before
    # With a token the same variables are answered (directly).
    answered = await post(api, query, many, None, tokens["reader"])
    assert answered.status_code == 200, answered.text
    assert prepared_reads().answered == before + 1


async def test_a_failing_statement_or_planner_takes_the_full_way(
    api: Api, resolver_api: Api, tokens: dict[str, str | None], monkeypatch: pytest.MonkeyPatch
) -> None:
    query = unique("{ batches(first: 2) { edges { node { title } } } }")
    assert (await post(api, query, None, None, tokens["reader"])).status_code == 200
    stats = planner().stats

    async def broken_run(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the statement failed")

    def broken_plan(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the planner failed")

    for target, name, broken in (
        ("run", "batches", broken_run),
        ("plan", "(planning)", broken_plan),
    ):
        with monkeypatch.context() as patch:
            patch.setattr(Planner, target, broken)
            before, failed = prepared_reads().answered, stats["failed"][name]
            compiled, resolved = await both(api, resolver_api, query, None, tokens["reader"])
        assert compiled == resolved, first_difference(compiled, resolved)
        assert compiled[0] == 200
        assert prepared_reads().answered == before
        # Recorded by the lane and by the full way, each trying once.
        assert stats["failed"][name] == failed + 2
        assert str(planner().last_failure).count("failed") >= 1


@pytest.fixture
async def budget_api(db: Database) -> Any:
    settings = replace(SETTINGS, rate_limit_enabled=True, rate_limit_points=10)
    app = create_app(
        settings=settings, db=db, dispatcher=DramatiqDispatcher(build_broker("redis://:1/0"))
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        yield Api(c)


async def test_the_budget_is_spent_and_refused_as_the_full_way_does(
    budget_api: Api, tokens: dict[str, str | None]
) -> None:
    # 300 objects: 3 points each. A budget of 10 answers three (the first the full way);
    # the fourth finds a point left at the door and is refused by the lane's own spend.
    text = "{ batches(first: 100) { edges { node { jobs(first: 2) { totalCount } } } } }"
    query = unique(text)
    before = prepared_reads().answered
    answers = [await post(budget_api, query, None, None, tokens["reader"]) for _ in range(4)]
    assert prepared_reads().answered - before == 3
    assert [r.status_code for r in answers] == [200, 200, 200, 429]
    assert [r.headers["x-ratelimit-remaining"] for r in answers] == ["7", "4", "1", "1"]
    costs = [r.json()["extensions"]["cost"] for r in answers]
    assert [c["pointsRemaining"] for c in costs] == [7, 4, 1, 1]
    assert all(c["points"] == 3 and c["requested"] == 300 for c in costs)
    # The full way's refusal of the same: another caller with one point left sends
    # the document as no one sent it before.
    dear = unique("{ batches(first: 100) { edges { node { jobs(first: 8) { totalCount } } } } }")
    assert (await post(budget_api, dear, None, None, tokens["admin"])).status_code == 200
    before = prepared_reads().answered
    full = await post(budget_api, unique(text), None, None, tokens["admin"])
    assert prepared_reads().answered == before
    lane = answers[-1]
    assert full.status_code == lane.status_code == 429
    assert full.headers["x-ratelimit-remaining"] == lane.headers["x-ratelimit-remaining"]
    assert int(lane.headers["retry-after"]) >= 1
    [error] = lane.json()["errors"]
    assert error["extensions"]["code"] == "RATE_LIMITED"
    assert error["extensions"]["requestId"] == lane.headers["x-request-id"]

    def timeless(response: httpx.Response) -> Any:
        body = normalized(response.json())
        for error in body["errors"]:
            error["message"] = re.sub(r"Retry in \d+ s", "Retry in - s", error["message"])
            error["extensions"].pop("retryAfter")
        return body

    assert timeless(lane) == timeless(full), first_difference(timeless(lane), timeless(full))


async def test_the_full_way_reuses_what_the_lane_began(
    api: Api, tokens: dict[str, str | None], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A POST the lane does not answer (a mutation, a document not known yet) is
    authenticated, door-checked and decoded once, not again by the full way."""
    calls: list[str] = []
    original = Authenticator.authenticate

    async def counted(self: Authenticator, secret: str, *, now: Any) -> Any:
        calls.append(secret)
        return await original(self, secret, now=now)

    loads: list[int] = []
    original_loads = safejson.loads

    def counted_loads(data: Any, *, max_depth: int) -> Any:
        loads.append(len(data))
        return original_loads(data, max_depth=max_depth)

    monkeypatch.setattr(Authenticator, "authenticate", counted)
    monkeypatch.setattr(safejson, "loads", counted_loads)
    for query in (
        unique("{ workspaces { totalCount } }"),  # not known yet: the full way answers
        'mutation { createWorkspace(input: {name: "reused"}) { __typename } }',
    ):
        calls.clear()
        loads.clear()
        response = await post(api, query, None, None, tokens["admin"])
        assert response.status_code == 200, response.text
        assert "errors" not in response.json(), response.text
        assert len(calls) == 1
        assert len(loads) == 1
