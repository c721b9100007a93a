"""Free strings have documented length limits (README, "Free strings"): one character
past each is refused with its coded arm, and nothing is written."""

from __future__ import annotations

from typing import Any

import pytest

from db.enums import TokenRole
from db.session import Database
from tests.conftest import row_counts
from tests.factories import make_batch, make_task_type, make_token
from tests.graphql.conftest import Api
from tests.graphql.test_pull_workers import gid, one_node

CANCEL_JOB = """mutation($id: ID!, $r: String) { cancelJob(id: $id, reason: $r) { __typename
  ... on ValidationFailed { violations { path } } } }"""
CANCEL_BATCH = """mutation($id: ID!, $r: String) { cancelBatch(id: $id, reason: $r) {
  __typename ... on ValidationFailed { violations { path } } } }"""
CREATE_BATCH = """mutation($i: BatchInput!) { createBatch(input: $i) { __typename
  ... on InvalidBatch { validation { errors { name path } } } } }"""
CREATE_TOKEN = """mutation($o: String!) { createToken(input: {owner: $o, role: READER}) {
  __typename ... on ValidationFailed { violations { path } } } }"""
REGISTER = """mutation($h: String!) { registerWorker(input: {host: $h}) { __typename
  ... on ValidationFailed { violations { path } } } }"""


@pytest.fixture
async def batch(db: Database) -> Any:
    await make_task_type(db, "t")
    return await make_batch(db, one_node("t", 1))


@pytest.mark.parametrize(("length", "accepted"), [(1_000, True), (1_001, False)])
async def test_cancel_reasons_are_at_most_1000_characters(
    api: Api, db: Database, batch: Any, length: int, accepted: bool
) -> None:
    writer = (await make_token(db, role=TokenRole.WRITER))[1]
    before = await row_counts(db)
    found = await api.data(
        CANCEL_BATCH, {"id": gid("Batch", batch.id), "r": "x" * length}, token=writer
    )
    if accepted:
        assert found["cancelBatch"]["__typename"] == "BatchCanceled"
        return
    assert found["cancelBatch"] == {
        "__typename": "ValidationFailed",
        "violations": [{"path": "$.reason"}],
    }
    job_id = 1  # the batch's only job
    refused = await api.data(
        CANCEL_JOB, {"id": gid("Job", job_id), "r": "x" * length}, token=writer
    )
    assert refused["cancelJob"]["__typename"] == "ValidationFailed"
    assert await row_counts(db) == before


@pytest.mark.parametrize(
    ("field", "length", "path"),
    [("title", 201, "$.title"), ("description", 10_001, "$.description")],
)
async def test_batch_titles_and_descriptions_have_limits(
    api: Api, db: Database, field: str, length: int, path: str
) -> None:
    await make_task_type(db, "t")
    writer = (await make_token(db, role=TokenRole.WRITER))[1]
    before = await row_counts(db)
    spec = {"title": "ok", "definition": one_node("t", 1), field: "x" * length}
    found = await api.data(CREATE_BATCH, {"i": spec}, token=writer)
    assert found["createBatch"]["__typename"] == "InvalidBatch"
    assert {"name": "INVALID_BATCH_CONFIGURATION", "path": path} in found["createBatch"][
        "validation"
    ]["errors"]
    assert await row_counts(db) == before


async def test_token_owners_and_worker_hosts_have_limits(api: Api, db: Database) -> None:
    admin = (await make_token(db))[1]
    before = await row_counts(db)
    owner = await api.data(CREATE_TOKEN, {"o": "x" * 201}, token=admin)
    assert owner["createToken"] == {
        "__typename": "ValidationFailed",
        "violations": [{"path": "$.owner"}],
    }
    host = await api.data(REGISTER, {"h": "x" * 256})
    assert host["registerWorker"] == {
        "__typename": "ValidationFailed",
        "violations": [{"path": "$.host"}],
    }
    assert await row_counts(db) == before


# --- control and bidirectional formatting characters (attacker review) -------------

TERMINAL_ATTACK = "evil\u001b]0;PWNED\u0007\u001b[2J"
HOSTILE = [TERMINAL_ATTACK, "doc\u202etxt.exe", "a\u2066b", "tab\there", "line\nbreak", "c1\x9b2J"]


@pytest.mark.parametrize("text", HOSTILE)
async def test_identifier_like_strings_refuse_control_characters(
    api: Api, db: Database, text: str
) -> None:
    """Worker hosts (anonymous registerWorker), token owners and batch titles."""
    await make_task_type(db, "t")
    admin = (await make_token(db))[1]
    before = await row_counts(db)
    host = await api.data(REGISTER, {"h": text})
    assert host["registerWorker"] == {
        "__typename": "ValidationFailed",
        "violations": [{"path": "$.host"}],
    }
    owner = await api.data(CREATE_TOKEN, {"o": text}, token=admin)
    assert owner["createToken"] == {
        "__typename": "ValidationFailed",
        "violations": [{"path": "$.owner"}],
    }
    title = await api.data(
        CREATE_BATCH, {"i": {"title": text, "definition": one_node("t", 1)}}, token=admin
    )
    assert title["createBatch"]["validation"]["errors"] == [
        {"name": "INVALID_BATCH_CONFIGURATION", "path": "$.title"}
    ]
    assert await row_counts(db) == before


async def test_the_refusal_names_the_character_without_echoing_it(api: Api) -> None:
    found = await api.data(
        """mutation($h: String!) { registerWorker(input: {host: $h}) {
        ... on ValidationFailed { code violations { path message } } } }""",
        {"h": TERMINAL_ATTACK},
    )
    [violation] = found["registerWorker"]["violations"]
    assert found["registerWorker"]["code"] == "VALIDATION_FAILED"
    assert "U+001B at position 4" in violation["message"]
    assert "\x1b" not in violation["message"]


@pytest.mark.parametrize(
    ("text", "accepted"),
    [("two\nlines\tand a tab", True), (TERMINAL_ATTACK, False), ("rtl\u202e", False)],
)
async def test_multi_line_texts_keep_line_feeds_and_tabs_only(
    api: Api, db: Database, batch: Any, text: str, accepted: bool
) -> None:
    """Descriptions and reasons: \\n and \\t are text; ESC, BEL and bidi overrides are not."""
    writer = (await make_token(db, role=TokenRole.WRITER))[1]
    before = await row_counts(db)
    spec = {"title": "ok", "definition": one_node("t", 1), "description": text}
    created = await api.data(CREATE_BATCH, {"i": spec}, token=writer)
    reason = await api.data(CANCEL_BATCH, {"id": gid("Batch", batch.id), "r": text}, token=writer)
    if accepted:
        assert created["createBatch"]["__typename"] == "BatchCreated"
        assert reason["cancelBatch"]["__typename"] == "BatchCanceled"
        return
    assert created["createBatch"]["validation"]["errors"] == [
        {"name": "INVALID_BATCH_CONFIGURATION", "path": "$.description"}
    ]
    assert reason["cancelBatch"] == {
        "__typename": "ValidationFailed",
        "violations": [{"path": "$.reason"}],
    }
    assert await row_counts(db) == before
