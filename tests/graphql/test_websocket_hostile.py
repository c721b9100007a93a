"""graphql-transport-ws against hostile or broken clients, and tokens revoked mid-stream
(a real server: tests.conftest.live_server)."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from db.enums import TokenRole
from db.session import Database
from db.uow import UnitOfWork
from domain.auth import service as auth
from graphql_api.settings import Limits
from tests.factories import ADMIN, make_token
from tests.graphql.test_subscriptions import EVENTS, gid, move, setup  # noqa: F401

PROTOCOL = "graphql-transport-ws"
LIMITS = Limits()


async def connect(live_server: str, token: str | None = None) -> Any:
    ws = await websockets.connect(
        live_server.replace("http", "ws") + "/graphql", subprotocols=[PROTOCOL]
    )
    init = {"Authorization": f"Bearer {token}"} if token else {}
    await ws.send(json.dumps({"type": "connection_init", "payload": init}))
    assert json.loads(await ws.recv())["type"] == "connection_ack"
    return ws


async def closed_with(ws: Any) -> int:
    """Read until the server closes the socket; its close code."""
    try:
        while True:
            await asyncio.wait_for(ws.recv(), 10)
    except ConnectionClosed as closed:
        return int(closed.rcvd.code) if closed.rcvd is not None else -1


async def test_a_document_over_the_token_limit_gets_its_error(
    live_server: str, db: Database
) -> None:
    ws = await connect(live_server)
    query = "{ " + " ".join(["__typename"] * (LIMITS.max_tokens + 10)) + " }"
    await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": query}}))
    message = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert message["type"] == "error"
    assert message["id"] == "1"
    assert message["payload"][0]["extensions"]["code"] == "LIMIT_EXCEEDED"
    # The connection stays usable.
    await ws.send(
        json.dumps({"id": "2", "type": "subscribe", "payload": {"query": "{ __typename }"}})
    )
    assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "next"
    await ws.close()


async def test_an_expensive_document_gets_its_cost_error(live_server: str, db: Database) -> None:
    ws = await connect(live_server)
    query = 'subscription { jobStatusChanged(batch: "QmF0Y2g6MQ==") { eventId } }'
    costly = (
        "{ batches(first: 100) { edges { node { jobs(first: 100) { edges { node {"
        " events(first: 100) { totalCount } } } } } } } }"
    )
    for op_id, text in (("a", costly), ("b", query)):
        await ws.send(json.dumps({"id": op_id, "type": "subscribe", "payload": {"query": text}}))
    message = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert (message["id"], message["type"]) == ("a", "error")
    assert message["payload"][0]["extensions"]["code"] == "LIMIT_EXCEEDED"
    await ws.close()


@pytest.mark.parametrize("bad_id", [1, None, "", ["x"]])
async def test_subscription_ids_must_be_strings(
    live_server: str, db: Database, bad_id: object
) -> None:
    ws = await connect(live_server)
    await ws.send(
        json.dumps({"id": bad_id, "type": "subscribe", "payload": {"query": "{ __typename }"}})
    )
    assert await closed_with(ws) == 4400


async def test_subscriptions_per_connection_are_capped(live_server: str, db: Database) -> None:
    ws = await connect(live_server)
    query = "subscription { workerStatusChanged { name } }"
    # Anonymous: refused at once, so use a token that may subscribe.
    await ws.close()
    _, token = await make_token(db, role=TokenRole.READER)
    ws = await connect(live_server, token)
    for i in range(LIMITS.max_subscriptions_per_connection):
        await ws.send(json.dumps({"id": str(i), "type": "subscribe", "payload": {"query": query}}))
    await ws.send(json.dumps({"id": "over", "type": "subscribe", "payload": {"query": query}}))
    message = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert (message["id"], message["type"]) == ("over", "error")
    [error] = message["payload"]
    assert "limit" in error["message"].lower()
    # Coded like every other error (strawberry's own refusal had no extensions).
    assert error["extensions"]["code"] == "LIMIT_EXCEEDED"
    assert error["extensions"]["requestId"]
    # The connection stays usable: completing one operation makes room for another.
    await ws.send(json.dumps({"id": "0", "type": "complete"}))
    await ws.send(json.dumps({"id": "again", "type": "subscribe", "payload": {"query": query}}))
    await ws.send(json.dumps({"type": "ping"}))
    assert json.loads(await asyncio.wait_for(ws.recv(), 10)) == {"type": "pong"}
    await ws.close()


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (
            '{"id": "1", "type": "subscribe", "payload": {"query": "{ __typename }",'
            ' "variables": {"a": "\\u0000"}}}',
            "NUL",
        ),
        (
            '{"id": "1", "type": "subscribe", "payload": {"query": "{ __typename }",'
            ' "variables": {"a": "\\ud800"}}}',
            "surrogate",
        ),
        (
            '{"id": "\\udfff", "type": "subscribe", "payload": {"query": "{ __typename }"}}',
            "surrogate",
        ),
        ("[" * 1000 + "]" * 1000, "nested"),
        ('{"type": "ping", "payload": {"n": 1e400}}', "too large"),
        ("{nope", "valid JSON"),
    ],
    ids=["nul", "surrogate", "surrogate-id", "deep", "huge-number", "broken"],
)
async def test_a_message_refused_as_json_closes_with_4400_saying_why(
    live_server: str, db: Database, caplog: pytest.LogCaptureFixture, text: str, reason: str
) -> None:
    caplog.set_level(logging.WARNING)
    ws = await connect(live_server)
    await ws.send(text)
    with pytest.raises(ConnectionClosed) as closed:
        await asyncio.wait_for(ws.recv(), 10)  # nothing comes before the close
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4400
    assert closed.value.rcvd.reason.startswith("WebSocket message must be valid JSON")
    assert reason in closed.value.rcvd.reason
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


async def test_a_token_disabled_mid_stream_closes_the_socket(
    live_server: str,
    db: Database,
    setup: tuple[str, int, list[int]],  # noqa: F811
) -> None:
    from db.enums import JobStatus
    from domain.jobs.rules import Initiator

    token_row, token = await make_token(db, role=TokenRole.READER, owner="leaver")
    _, batch_id, job_ids = setup
    ws = await connect(live_server, token)
    await ws.send(
        json.dumps(
            {
                "id": "1",
                "type": "subscribe",
                "payload": {"query": EVENTS, "variables": {"batch": gid("Batch", batch_id)}},
            }
        )
    )
    await asyncio.sleep(0.3)  # subscribed (listening) before the first change
    await move(db, job_ids[0], JobStatus.CANCELED, Initiator.USER)
    first = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert first["type"] == "next"

    async with UnitOfWork(db.write_session) as uow:
        await auth.set_token_enabled(uow, token_id=token_row.id, enabled=False, actor=ADMIN)
        await uow.commit()
    # The change is announced (NOTIFY): no need to wait BATCHGRAPH_TOKEN_RECHECK_SECONDS.
    await move(db, job_ids[1], JobStatus.CANCELED, Initiator.USER)
    assert await closed_with(ws) == 4403
