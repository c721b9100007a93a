"""The compiled read path's own promises: parameterized SQL whatever the input, refusals
before any SQL, one statement for a whole query, the switch back to the resolvers."""

from __future__ import annotations

import base64
import json
from typing import Any

import graphql
import pytest

from db.config import load_settings
from db.enums import TokenRole
from db.errors import ReadPoolTimeoutError, is_pool_timeout
from db.rawpool import acquired, open_read_pool
from db.session import Database
from graphql_api.compiled.spec import Scope
from graphql_api.settings import ApiSettings
from tests.conftest import StatementCounter, row_counts
from tests.factories import make_batch, make_task_type, make_token, two_node_definition
from tests.graphql.conftest import Api
from tests.graphql.differential import both, first_difference, planner

HOSTILE = [
    "'; DROP TABLE job; --",
    'quote " and \\ backslash',
    "100% _wild_ %_%",
    "ünïcödé ✓ 𝄞",
    "$1 :name %(x)s ? {}",
    "a\tb\nc",
]
MARK = "DROP TABLE"
# Titles may not hold control characters (tests/graphql/test_string_limits.py);
# "a\tb\nc" is still sent as every lookup string below.
TITLES = ["plain", *(t for t in HOSTILE if t.isprintable())]


def cursor(*key: Any) -> str:
    raw = json.dumps(list(key), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def gid(kind: str, node_id: str) -> str:
    return base64.b64encode(f"{kind}:{node_id}".encode()).decode()


DOCUMENTS: list[tuple[str, dict[str, Any]]] = []
for text in HOSTILE:
    DOCUMENTS += [
        (
            """query($s: String!) { workspace(name: $s) { name }
            taskType(name: $s, workspace: $s) { name } worker(name: $s) { name }
            taskTypes(workspace: $s, filter: {nameContains: $s}) { totalCount }
            batches(filter: {workspace: $s, taskType: $s}) { totalCount edges { node {
              jobs(filter: {node: $s, worker: $s}) { totalCount } } } }
            jobs(filter: {node: $s, worker: $s}) { totalCount } }""",
            {"s": text},
        ),
        (
            """query($c: String!) { batches(orderBy: {field: TITLE}, after: $c) { totalCount
              edges { cursor node { title } } } }""",
            {"c": cursor(text, 1)},
        ),
        (
            """query($c: String!) { workspaces(after: $c) { edges { node { name } } }
              taskTypes(after: $c) { totalCount } }""",
            {"c": cursor(text)},
        ),
        (
            "query($id: ID!) { node(id: $id) { id } batch(id: $id) { id } job(id: $id) { id } }",
            {"id": gid("Batch", text)},
        ),
        ("query($c: String!) { jobs(after: $c) { totalCount } }", {"c": text}),
    ]


@pytest.fixture
async def data(db: Database) -> str:
    await make_task_type(db, "resize")
    await make_task_type(db, "thumb")
    for title in TITLES:
        await make_batch(db, two_node_definition([{"url": "u", "width": 1}]), title=title)
    return (await make_token(db, role=TokenRole.READER))[1]


@pytest.mark.parametrize("index", range(len(DOCUMENTS)))
async def test_hostile_strings_reach_sql_only_as_parameters(
    api: Api,
    resolver_api: Api,
    db: Database,
    data: str,
    sql_counter: StatementCounter,
    index: int,
) -> None:
    query, variables = DOCUMENTS[index]
    before = await row_counts(db)
    failed = sum(planner().stats["failed"].values())
    for token in (None, data):
        compiled, resolved = await both(api, resolver_api, query, variables, token)
        assert compiled == resolved, first_difference(compiled, resolved)
        assert compiled[0] < 500, compiled
    assert not any(MARK in s for s in sql_counter.statements)
    assert await row_counts(db) == before
    assert sum(planner().stats["failed"].values()) == failed  # no statement failed


REFUSED = [
    ("{ viewer ", "BAD_REQUEST"),  # syntax
    ("{ batches { edges { node { noSuchField } } } }", "BAD_REQUEST"),
    (
        "{ batches { edges { node { jobs { edges { node { batch { jobs { edges { node {"
        " batch { jobs { edges { node { batch { title } } } } } } } } } } } } } } } }",
        "LIMIT_EXCEEDED",  # deeper than 12
    ),
    ("{ " + " ".join(f"a{i}: viewer {{ role }}" for i in range(31)) + " }", "LIMIT_EXCEEDED"),
    ("{ viewer { " + " ".join(["role"] * 6000) + " } }", "LIMIT_EXCEEDED"),  # tokens
    ("{ batches(first: 101) { totalCount } }", "LIMIT_EXCEEDED"),
    ('{ batches(after: "%%%") { totalCount } }', "BAD_REQUEST"),
    ('{ workspace(name: "a\\u{0}b") { name } }', "BAD_REQUEST"),  # NUL by GraphQL's escape
    ("{ tokens { totalCount } }", "UNAUTHENTICATED"),
    ("{ workers { totalCount } }", "UNAUTHENTICATED"),
]


@pytest.mark.parametrize(("query", "code"), REFUSED)
async def test_what_is_refused_is_refused_before_any_sql_with_the_same_error(
    api: Api,
    resolver_api: Api,
    db: Database,
    sql_counter: StatementCounter,
    query: str,
    code: str,
) -> None:
    sql_counter.statements.clear()
    compiled, resolved = await both(api, resolver_api, query, None, None)
    assert compiled == resolved, first_difference(compiled, resolved)
    assert compiled[1]["errors"][0]["extensions"]["code"] == code
    assert sql_counter.count == 0, sql_counter.statements


async def test_every_root_field_of_a_query_in_one_statement(
    api: Api, db: Database, data: str, sql_counter: StatementCounter
) -> None:
    query = """query { viewer { role } batches(first: 3) { totalCount edges { node { title
      counters { jobsTotal } metrics { node } jobs(first: 2) { edges { node { status
        taskType { name } events(first: 3) { edges { node { toStatus } } } } } } } } }
      jobs(first: 5) { pageInfo { hasNextPage } } taskTypes { totalCount }
      workspaces { edges { node { name } } } workspace(name: "default") { name }
      taskType(name: "resize") { currentRevision { revision } } apiMetadata { version } }"""
    await api.data("{ viewer { role } }", token=data)  # the token is cached from here on
    sql_counter.statements.clear()
    found = await api.data(query, token=data)
    assert found["batches"]["totalCount"] == len(TITLES)
    assert sql_counter.count == 1, sql_counter.statements


async def test_the_switch_sends_everything_to_the_resolvers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert ApiSettings.of(load_settings()).compiled_reads is True
    monkeypatch.setenv("BATCHGRAPH_COMPILED_READS", "false")
    assert ApiSettings.of(load_settings()).compiled_reads is False


async def test_no_free_read_connection_is_503_at_once_not_a_fallback(
    api: Api, db: Database, data: str
) -> None:
    """A read pool with no free connection within the wait: the compiled path (and so
    the lane of prepared reads) raises what the engine's pool raises, answered 503
    with Retry-After, instead of handing the fields to resolvers that would wait again."""
    pool = await open_read_pool(db.engine, size=1)
    try:
        plan = planner().plan(
            query="{ batches { totalCount } }",
            document=graphql.parse("{ batches { totalCount } }"),
            definition=graphql.parse("{ batches { totalCount } }").definitions[0],  # type: ignore[arg-type]
            operation_name=None,
            raw_variables=None,
            scope=Scope(actor=None, settings=ApiSettings()),
        )
        assert plan is not None
        assert plan.compiled
        failed = sum(planner().stats["failed"].values())
        async with acquired(pool, 1.0):  # the only connection, held
            with pytest.raises(ReadPoolTimeoutError) as caught:
                await planner().texts(db, plan, pool, 0.2)
        assert is_pool_timeout(caught.value)
        assert plan.compiled  # not moved to the resolvers
        assert sum(planner().stats["failed"].values()) == failed
        assert await planner().texts(db, plan, pool, 0.2) is not None  # free again
    finally:
        await pool.close()
