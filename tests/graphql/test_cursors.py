"""Cursors are client input: whatever ``after`` holds (any bytes, any JSON, nesting 1,000
deep, NUL, lone surrogates, keys of the wrong arity or type, datetimes out of range),
every connection field answers it with a coded BAD_REQUEST or a page, never a 500, on
both read paths (compiled and resolvers, compared as the differential oracle does), and
an unexpected error is logged once."""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from db.enums import TokenRole
from db.session import Database
from tests.factories import make_token
from tests.graphql.conftest import Api
from tests.graphql.differential import Seed, both, first_difference, seed

EXAMPLES = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

PAGE = "first: 2"
EDGES = "edges { cursor }"
# Every connection field: the roots paged by $a, the nested ones (under unpaged parents) by $n.
DOCUMENT = f"""query($a: String, $n: String) {{
  tokens({PAGE}, after: $a) {{ {EDGES} }}
  workspaces({PAGE}, after: $a) {{ {EDGES} }}
  taskTypes({PAGE}, after: $a) {{ {EDGES} }}
  byId: batches({PAGE}, after: $a) {{ {EDGES} }}
  byTitle: batches({PAGE}, after: $a, orderBy: {{field: TITLE}}) {{ {EDGES} }}
  byCreated: batches({PAGE}, after: $a, orderBy: {{field: CREATED, direction: DESC}}) {{ {EDGES} }}
  byModified: batches({PAGE}, after: $a, orderBy: {{field: LAST_MODIFIED}}) {{ {EDGES} }}
  jobs({PAGE}, after: $a) {{ {EDGES} }}
  workers({PAGE}, after: $a) {{ {EDGES} }}
  nested: batches({PAGE}) {{ edges {{ node {{
    recipes({PAGE}, after: $n) {{ edges {{ cursor node {{
      jobs({PAGE}, after: $n) {{ {EDGES} }} }} }} }}
    jobs({PAGE}, after: $n) {{ edges {{ cursor node {{
      events({PAGE}, after: $n) {{ {EDGES} }} }} }} }}
  }} }} }}
  nestedCatalog: workspaces({PAGE}) {{ edges {{ node {{
    taskTypes({PAGE}, after: $n) {{ edges {{ cursor node {{
      revisions({PAGE}, after: $n) {{ {EDGES} }}
    }} }} }}
  }} }} }}
  nestedWorkers: workers({PAGE}) {{ edges {{ node {{ jobs({PAGE}, after: $n) {{ {EDGES} }} }} }} }}
}}"""


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def of_json(value: object) -> str:
    return b64(json.dumps(value, ensure_ascii=True).encode())


_hostile_text = st.one_of(
    st.text(max_size=12),  # lone surrogates and NUL included
    st.sampled_from(
        [
            "\x00",
            "\ud800",
            "a\udfffb",
            "9999-12-31T23:59:59-14:00",
            "0001-01-01T00:00:00+14:00",
            "2030-01-01 00:00:00+00:00",
            "2030-01-01T00:00:00",
            "default",
            "resize",
        ]
    ),
)
_scalar = st.one_of(
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.booleans(),
    st.none(),
    _hostile_text,
)
_json = st.recursive(
    _scalar,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=8,
)
cursors = st.one_of(
    st.binary(max_size=40).map(b64),  # any bytes
    st.lists(_scalar, max_size=3).map(of_json),  # a key of any arity and types
    _json.map(of_json),  # any JSON
    st.text(
        alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=20
    ),  # not base64 (NUL and surrogates are refused at the door)
)
DEEP = b64(b"[" * 1000 + b"]" * 1000)
OUT_OF_RANGE = of_json(["9999-12-31T23:59:59-14:00", 1])  # year 10000 in UTC


@pytest.fixture
async def seeded(api: Api, db: Database) -> Seed:
    return await seed(api, db)


async def check_both(
    api: Api, resolver_api: Api, data: Seed, cursor: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.clear()
    # The roots' cursor, then the nested lists' (under roots that answer).
    for variables in ({"a": cursor, "n": None}, {"a": None, "n": cursor}):
        with caplog.at_level(logging.WARNING):
            compiled, resolved = await both(
                api, resolver_api, DOCUMENT, variables, data.tokens[TokenRole.ADMIN]
            )
        for status, body in (compiled, resolved):
            assert status in (200, 400), (cursor, body)
            codes = {e["extensions"]["code"] for e in body.get("errors") or []}
            assert codes <= {"BAD_REQUEST"}, (cursor, body)
            # Refused by a connection field, not by the document's validation.
            assert all(e.get("path") for e in body.get("errors") or []), body
        if compiled[1].get("errors"):
            # Several failing non-null roots: which one graphql-core reports first (and
            # the data it cancels) is a race; the refusal itself must be the same.
            assert compiled[0] == resolved[0], (cursor, compiled, resolved)
        else:
            assert compiled == resolved, (cursor, first_difference(compiled, resolved))
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


@EXAMPLES
@given(cursor=cursors)
@example(cursor=DEEP)
@example(cursor=b64(b'["\\u0000"]'))
@example(cursor=b64(b'["\\ud800"]'))
@example(cursor=of_json(["9999-12-31T23:59:59-14:00", 1]))
@example(cursor=of_json(["2030-01-01T00:00:00", 1]))
@example(cursor=of_json([2**63]))
@example(cursor=of_json(["default", 1, 2]))
async def test_any_cursor_on_every_connection_on_both_read_paths(
    api: Api,
    resolver_api: Api,
    seeded: Seed,
    caplog: pytest.LogCaptureFixture,
    cursor: str,
) -> None:
    await check_both(api, resolver_api, seeded, cursor, caplog)


ROOTS = {
    "workspaces": "workspaces",
    "taskTypes": "taskTypes",
    "byId": "batches",
    "byTitle": "batches(orderBy: {field: TITLE})",
    "byCreated": "batches(orderBy: {field: CREATED, direction: DESC})",
    "byModified": "batches(orderBy: {field: LAST_MODIFIED})",
    "jobs": "jobs",
}


async def test_real_cursors_still_page(api: Api, resolver_api: Api, seeded: Seed) -> None:
    admin = seeded.tokens[TokenRole.ADMIN]
    first = await api.data(DOCUMENT, {"a": None, "n": None}, token=admin)
    for key, root in ROOTS.items():
        name, _, arguments = root.partition("(")
        arguments = f"{PAGE}, after: $a, " + arguments.rstrip(")")
        query = f"query($a: String) {{ {key}: {name}({arguments}) {{ {EDGES} }} }}"
        cursor = first[key]["edges"][0]["cursor"]
        compiled, resolved = await both(api, resolver_api, query, {"a": cursor}, admin)
        assert compiled == resolved, first_difference(compiled, resolved)
        assert compiled[0] == 200, compiled
        assert compiled[1]["data"][key]["edges"][0]["cursor"] == first[key]["edges"][1]["cursor"]


@pytest.mark.parametrize(
    "cursor",
    [DEEP, b64(b'["\\u0000"]'), b64(b'["\\ud800"]'), OUT_OF_RANGE],
    ids=["deep", "nul", "surrogate", "out-of-range"],
)
@pytest.mark.parametrize("root", ["workspaces", "taskTypes", "batches", "jobs", "tokens"])
async def test_the_reported_cursors_are_bad_requests(
    api: Api, resolver_api: Api, db: Database, root: str, cursor: str
) -> None:
    admin = (await make_token(db, role=TokenRole.ADMIN))[1]
    order = ", orderBy: {field: CREATED}" if root == "batches" else ""
    query = f"query($a: String) {{ {root}(after: $a{order}) {{ totalCount }} }}"
    for token in (None, admin):
        compiled, resolved = await both(api, resolver_api, query, {"a": cursor}, token)
        assert compiled == resolved
        status, body = compiled
        codes = [e["extensions"]["code"] for e in body.get("errors") or []]
        if token is None:  # anonymous: refused (tokens), or nothing readable to page through
            assert status in (200, 400, 401), body
            assert set(codes) <= {"BAD_REQUEST", "UNAUTHENTICATED"}, body
        elif root == "taskTypes" and cursor == OUT_OF_RANGE:
            assert status == 200, body  # (name, id): a task type may be named so
        else:
            assert (status, codes) == (400, ["BAD_REQUEST"]), body


async def test_an_unexpected_error_is_logged_once(
    resolver_api: Api,
    db: Database,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The masking logs the error with its request id; strawberry's copy of the same
    error list (``pre_execution_errors``) used to be masked, and logged, again."""
    from graphql_api.workspaces import queries

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(queries, "paginate", broken)
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="batchgraph.errors"):
        response = await resolver_api.post("{ workspaces { totalCount } nope: __typename }")
    body = response.json()
    assert body["errors"][0]["extensions"]["code"] == "INTERNAL"
    request_id = body["errors"][0]["extensions"]["requestId"]
    logged = [r for r in caplog.records if request_id in r.getMessage()]
    assert len(logged) == 1, caplog.text
