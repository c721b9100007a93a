"""graphql-transport-ws: the token travels in connection_init; bad tokens are refused."""

from __future__ import annotations

import json
from typing import Any

import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from db.enums import TokenRole
from db.session import Database
from tests.factories import make_token

PROTOCOL = "graphql-transport-ws"


async def _run(url: str, init: dict[str, Any], query: str) -> dict[str, Any]:
    async with websockets.connect(url, subprotocols=[PROTOCOL], open_timeout=10) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": init}))
        frame = await ws.recv()
        # Text frames, and no "payload": null: browsers' graphql-ws clients refuse both.
        assert isinstance(frame, str)
        assert json.loads(frame) == {"type": "connection_ack"}
        ack = json.loads(frame)
        assert ack["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": query}}))
        message = json.loads(await ws.recv())
        assert message["id"] == "1"
        complete = json.loads(await ws.recv())
        assert complete == {"id": "1", "type": "complete"}
        return message  # type: ignore[no-any-return]


def _ws(live_server: str) -> str:
    return live_server.replace("http://", "ws://") + "/graphql"


async def test_token_in_connection_init_identifies_the_caller(
    live_server: str, db: Database
) -> None:
    _, secret = await make_token(db, role=TokenRole.READER, owner="sam")
    message = await _run(
        _ws(live_server), {"Authorization": f"Bearer {secret}"}, "{ viewer { owner role } }"
    )
    assert message["type"] == "next"
    assert message["payload"]["data"] == {"viewer": {"owner": "sam", "role": "READER"}}


async def test_anonymous_websocket_reads_as_anonymous(live_server: str, db: Database) -> None:
    message = await _run(_ws(live_server), {}, "{ viewer { authenticated } }")
    assert message["payload"]["data"] == {"viewer": {"authenticated": False}}


@pytest.mark.parametrize(
    "init",
    [{"Authorization": "Bearer bg_nope"}, {"Authorization": "Basic abc"}, {"token": "bg_nope"}],
)
async def test_bad_token_closes_the_connection(
    live_server: str, db: Database, init: dict[str, str]
) -> None:
    async with websockets.connect(_ws(live_server), subprotocols=[PROTOCOL]) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": init}))
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4403


async def test_mutation_over_websocket_still_needs_a_role(live_server: str, db: Database) -> None:
    _, secret = await make_token(db, role=TokenRole.READER)
    message = await _run(
        _ws(live_server),
        {"Authorization": f"Bearer {secret}"},
        'mutation { createWorkspace(input: {name: "ws"}) { __typename } }',
    )
    assert message["type"] in ("next", "error")
    errors = message["payload"]["errors"] if message["type"] == "next" else message["payload"]
    assert errors[0]["extensions"]["code"] == "FORBIDDEN"
