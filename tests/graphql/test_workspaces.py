"""Workspaces and the Relay conventions (keyset cursors, totalCount, bounded pages)."""

from __future__ import annotations

import pytest

from db.enums import TokenRole
from db.session import Database
from tests.conftest import StatementCounter, row_counts
from tests.factories import make_task_type, make_token, make_workspace
from tests.graphql.conftest import Api

CREATE = """mutation($name: String!, $public: Boolean) {
  createWorkspace(input: {name: $name, public: $public}) {
    __typename
    ... on WorkspaceCreated { workspace { id name public } }
    ... on Error { code message }
    ... on ValidationFailed { violations { path message } } } }"""


async def test_admin_creates_workspace(api: Api, db: Database) -> None:
    _, admin = await make_token(db)
    data = await api.data(CREATE, {"name": "team-a", "public": True}, token=admin)
    assert data["createWorkspace"]["workspace"]["name"] == "team-a"
    assert data["createWorkspace"]["workspace"]["public"] is True
    by_name = await api.data('{ workspace(name: "team-a") { name public } }')
    assert by_name["workspace"] == {"name": "team-a", "public": True}


async def test_default_workspace_exists_after_migration(api: Api, db: Database) -> None:
    _, reader = await make_token(db, role=TokenRole.READER)
    data = await api.data('{ workspace(name: "default") { name public } }', token=reader)
    assert data["workspace"] == {"name": "default", "public": False}


@pytest.mark.parametrize("name", ["", "Upper", "-lead", "a b", "x" * 64, "ü"])
async def test_bad_names_are_refused(api: Api, db: Database, name: str) -> None:
    _, admin = await make_token(db)
    before = await row_counts(db)
    data = await api.data(CREATE, {"name": name}, token=admin)
    assert data["createWorkspace"]["__typename"] == "ValidationFailed"
    assert data["createWorkspace"]["violations"][0]["path"] == "$.name"
    assert await row_counts(db) == before


async def test_duplicate_workspace_conflicts(api: Api, db: Database) -> None:
    _, admin = await make_token(db)
    before = await row_counts(db)
    data = await api.data(CREATE, {"name": "default"}, token=admin)
    assert data["createWorkspace"]["__typename"] == "Conflict"
    assert await row_counts(db) == before


async def test_writer_cannot_create_workspaces(api: Api, db: Database) -> None:
    _, writer = await make_token(db, role=TokenRole.WRITER)
    status, errors = await api.errors(CREATE, {"name": "w"}, token=writer)
    assert (status, errors[0]["extensions"]["code"]) == (403, "FORBIDDEN")


async def test_keyset_pagination_walks_every_item_once(api: Api, db: Database) -> None:
    _, reader = await make_token(db, role=TokenRole.READER)
    names = [f"t{i:02d}" for i in range(7)]
    for name in reversed(names):
        await make_task_type(db, name)
    query = """query($after: String) { taskTypes(first: 3, after: $after) {
        totalCount pageInfo { hasNextPage hasPreviousPage endCursor startCursor }
        edges { cursor node { name } } } }"""
    seen: list[str] = []
    after = None
    pages = 0
    while True:
        conn = (await api.data(query, {"after": after}, token=reader))["taskTypes"]
        pages += 1
        assert conn["totalCount"] == 7
        assert conn["pageInfo"]["hasPreviousPage"] is (after is not None)
        seen += [e["node"]["name"] for e in conn["edges"]]
        assert conn["pageInfo"]["endCursor"] == conn["edges"][-1]["cursor"]
        if not conn["pageInfo"]["hasNextPage"]:
            break
        after = conn["pageInfo"]["endCursor"]
    assert seen == names
    assert pages == 3


async def test_a_new_row_does_not_shift_the_next_page(api: Api, db: Database) -> None:
    """Keyset, not OFFSET: inserting before the cursor neither repeats nor skips items."""
    _, reader = await make_token(db, role=TokenRole.READER)
    for name in ["b", "c", "d", "e"]:
        await make_task_type(db, name)
    query = """query($after: String) { taskTypes(first: 2, after: $after) {
        pageInfo { endCursor } edges { node { name } } } }"""
    first = (await api.data(query, token=reader))["taskTypes"]
    await make_task_type(db, "a")  # sorts before everything seen so far
    second = await api.data(query, {"after": first["pageInfo"]["endCursor"]}, token=reader)
    assert [e["node"]["name"] for e in second["taskTypes"]["edges"]] == ["d", "e"]


@pytest.mark.parametrize(
    ("args", "code", "status"),
    [
        ("first: 100000", "LIMIT_EXCEEDED", 400),
        ("first: 101", "LIMIT_EXCEEDED", 400),
        ("first: -1", "BAD_REQUEST", 400),
        ('after: "%%%"', "BAD_REQUEST", 400),
        ('after: "WzFd"', "BAD_REQUEST", 400),  # [1]: a cursor of another list's shape
    ],
)
async def test_page_arguments_are_bounded(
    api: Api, db: Database, args: str, code: str, status: int
) -> None:
    got_status, errors = await api.errors(f"{{ workspaces({args}) {{ totalCount }} }}")
    assert errors[0]["extensions"]["code"] == code
    assert got_status == status


async def test_first_defaults_to_the_default_page_size(api: Api, db: Database) -> None:
    _, reader = await make_token(db, role=TokenRole.READER)
    for i in range(25):
        await make_task_type(db, f"n{i:02d}")
    data = await api.data(
        "{ taskTypes { edges { node { name } } pageInfo { hasNextPage } } }", token=reader
    )
    assert len(data["taskTypes"]["edges"]) == 20
    assert data["taskTypes"]["pageInfo"]["hasNextPage"] is True


@pytest.mark.parametrize(("compiled", "statements"), [(True, 1), (False, 4)])
async def test_nested_relations_do_not_multiply_queries(
    api: Api,
    resolver_api: Api,
    db: Database,
    sql_counter: StatementCounter,
    compiled: bool,
    statements: int,
) -> None:
    """Workspaces and current revisions load through DataLoaders: a fixed number of
    statements whatever the page size."""
    api = api if compiled else resolver_api
    _, reader = await make_token(db, role=TokenRole.READER)
    await make_workspace(db, "other")
    query = """query($n: Int) { taskTypes(first: $n) { edges { node { name
        workspace { name } currentRevision { revision taskType { name } } } } } }"""

    async def statements_for(n: int) -> int:
        sql_counter.statements.clear()
        data = await api.data(query, {"n": n}, token=reader)
        assert len(data["taskTypes"]["edges"]) == n
        return sql_counter.count

    for i in range(3):
        await make_task_type(db, f"a{i}", workspace="other" if i % 2 else "default")
    await api.data("{ viewer { owner } }", token=reader)  # records last use (a write, once)
    small = await statements_for(3)
    for i in range(3, 30):
        await make_task_type(db, f"a{i}", workspace="other" if i % 2 else "default")
    large = await statements_for(30)
    assert small == large
    # compiled: one statement; resolvers: page + workspaces + revisions + the
    # revisions' task types (the token is cached)
    assert large == statements, sql_counter.statements
