"""Property-based: documents and variables generated from schema.graphql, for every role,
against the real ASGI app: no 5xx, every error coded, nothing internal leaked.

Bounded (FUZZ_EXAMPLES per role and kind) to keep `make test` short; bench/fuzz.py runs
the same property for as long as asked."""

from __future__ import annotations

import os
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings

from db.enums import TokenRole
from db.session import Database
from tests.factories import make_batch, make_task_type, make_token
from tests.graphql.fuzzing import ROLES, check_response, documents, variable_bodies

FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "40"))
FUZZ = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    database=None,  # no example database in the work tree
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
async def tokens(db: Database) -> dict[str, str | None]:
    """Tokens created for this run (never shared ones), and some data to find."""
    await make_task_type(db, "t")
    await make_batch(db, {"recipe": {"nodes": [{"name": "n", "taskType": "t"}]}, "inputs": [{}]})
    found: dict[str, str | None] = {"anonymous": None}
    for role in ROLES[1:]:
        found[role] = (await make_token(db, role=TokenRole(role.upper()), owner=f"fuzz-{role}"))[1]
    return found


async def _send(client: httpx.AsyncClient, token: str | None, **kwargs: Any) -> None:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    if "content" in kwargs:
        headers["content-type"] = "application/json"
    response = await client.post("/graphql", headers=headers, **kwargs)
    check_response(response.status_code, response.text)


@pytest.mark.parametrize("role", ROLES)
@FUZZ
@given(document=documents())
async def test_generated_documents(
    client: httpx.AsyncClient, tokens: dict[str, str | None], role: str, document: str
) -> None:
    await _send(client, tokens[role], json={"query": document})


@pytest.mark.parametrize("role", ROLES)
@FUZZ
@given(body=variable_bodies())
async def test_generated_variables(
    client: httpx.AsyncClient, tokens: dict[str, str | None], role: str, body: bytes
) -> None:
    await _send(client, tokens[role], content=body)
