"""What the property-based test (tests/graphql/test_fuzz.py) and bench/fuzz.py share:
documents and variables generated from schema.graphql, and the property they must hold."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from hypothesis import strategies as st
from hypothesis_graphql import from_schema, nodes
from hypothesis_graphql.strategies import Mode

SCHEMA = (Path(__file__).resolve().parents[2] / "schema.graphql").read_text()
ROLES = ("anonymous", "reader", "writer", "worker", "admin")
# What no client may ever read: tracebacks, SQL, driver names, file paths.
LEAKS = ("Traceback", "sqlalchemy", "asyncpg", "SELECT ", "INSERT ", 'File "', "/site-packages/")


def _gid(kind: str, pk: int) -> str:
    return base64.b64encode(f"{kind}:{pk}".encode()).decode()


_ids = st.sampled_from(
    ["Batch", "Job", "TaskType", "Workspace", "Token", "Worker", "Nope"]
).flatmap(lambda kind: st.integers(min_value=-1, max_value=5).map(lambda pk: _gid(kind, pk)))
SCALARS = {
    "ID": st.one_of(_ids, st.text(max_size=12)).map(nodes.String),
    "DateTime": st.sampled_from(
        ["2030-01-01T00:00:00Z", "2030-01-01T00:00:00", "2000-01-01T00:00:00+02:00", "x"]
    ).map(nodes.String),
    "JSON": st.one_of(
        st.integers(min_value=-(2**40), max_value=2**40).map(nodes.Int),
        st.text(max_size=20).map(nodes.String),
        st.just(nodes.Object([])),
    ),
}


def documents() -> st.SearchStrategy[str]:
    """Valid documents and documents with one schema violation, queries and mutations."""
    return st.one_of(
        from_schema(SCHEMA, custom_scalars=SCALARS, mode=Mode.POSITIVE),
        from_schema(SCHEMA, custom_scalars=SCALARS, mode=Mode.NEGATIVE),
    )


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)
# Documents whose variables carry the generated values (arbitrary JSON, any text,
# lone surrogates and non-finite floats included: sent as raw JSON text).
WITH_VARIABLES = [
    "query($v: JSON!, $t: ID!) { validateParameters(taskType: $t, parameters: $v) { __typename } }",
    'mutation($v: JSON) { createBatch(dryRun: true, input: {title: "f", definition: $v}) '
    "{ __typename } }",
    "query($s: String!) { workspace(name: $s) { id } taskType(name: $s) { id } }",
    "mutation($s: String, $t: ID!) { cancelBatch(id: $t, reason: $s) { __typename } }",
    "query($n: Int, $a: String) { jobs(first: $n, after: $a) { totalCount } }",
    "mutation($v: JSON!, $t: ID!) { completeJob(job: $t, result: $v) { __typename } }",
]


@st.composite
def variable_bodies(draw: st.DrawFn) -> bytes:
    query = draw(st.sampled_from(WITH_VARIABLES))
    variables = {
        "v": draw(_json),
        "t": draw(_ids),
        "s": draw(st.text(max_size=30)),
        "n": draw(st.one_of(st.none(), st.integers(min_value=-5, max_value=10**6))),
        "a": draw(st.one_of(st.none(), st.text(max_size=12))),
    }
    # allow_nan: NaN/Infinity as a client may send them; ensure_ascii: lone
    # surrogates travel as \\ud800 escapes.
    return json.dumps({"query": query, "variables": variables}, allow_nan=True).encode()


def check_response(status: int, text: str) -> None:
    """The property: no 5xx, every error coded, nothing internal leaked."""
    assert status < 500, (status, text[:2000])
    body: Any = json.loads(text)
    for result in body if isinstance(body, list) else [body]:
        for error in result.get("errors") or []:
            assert (error.get("extensions") or {}).get("code"), error
            assert not any(leak in error["message"] for leak in LEAKS), error
