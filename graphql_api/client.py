"""A small client of batchgraph's own API, for the command line (`batchgraph submit`)."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import websockets
from websockets.typing import Subprotocol

CREATE = """mutation($input: BatchInput!) { createBatch(input: $input) { __typename
  ... on BatchCreated { batch { id title } validation { plannedJobs } }
  ... on InvalidBatch { validation { errors { name description path node inputIndex } } }
  ... on Error { code message } } }"""
PROGRESS = """subscription($b: ID!) { batchProgress(batch: $b) { isCreationDone
  counters { jobsTotal pending blocked queued running completed failed canceled } } }"""


class ClientError(Exception):
    pass


def post(url: str, token: str | None, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        url,
        data=json.dumps({"query": query, "variables": variables}).encode(),
        headers={
            "content-type": "application/json",
            **({"authorization": f"Bearer {token}"} if token else {}),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            body = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        body = json.loads(exc.read() or b"{}")
    except urllib.error.URLError as exc:
        raise ClientError(f"cannot reach {url}: {exc.reason}") from exc
    if body.get("errors"):
        error = body["errors"][0]
        raise ClientError(f"{error.get('extensions', {}).get('code')}: {error['message']}")
    return body["data"]


async def progress(url: str, token: str | None, batch_id: str) -> AsyncIterator[dict[str, Any]]:
    """batchProgress updates until every job of a fully created batch is final."""
    ws_url = url.replace("http://", "ws://").replace("https://", "wss://")
    async with websockets.connect(ws_url, subprotocols=[Subprotocol("graphql-transport-ws")]) as ws:
        init = {"Authorization": f"Bearer {token}"} if token else {}
        await ws.send(json.dumps({"type": "connection_init", "payload": init}))
        ack = json.loads(await asyncio.wait_for(ws.recv(), 30))
        if ack.get("type") != "connection_ack":
            raise ClientError(f"subscription refused: {ack}")
        await ws.send(
            json.dumps(
                {
                    "id": "1",
                    "type": "subscribe",
                    "payload": {"query": PROGRESS, "variables": {"b": batch_id}},
                }
            )
        )
        while True:
            message = json.loads(await ws.recv())
            if message.get("type") == "error" or message.get("payload", {}).get("errors"):
                raise ClientError(f"subscription failed: {message}")
            if message.get("type") != "next":
                continue
            update = message["payload"]["data"]["batchProgress"]
            yield update
            c = update["counters"]
            if (
                update["isCreationDone"]
                and c["completed"] + c["failed"] + c["canceled"] == (c["jobsTotal"])
            ):
                return


def bar(counters: dict[str, int], width: int = 30) -> str:
    total = max(counters["jobsTotal"], 1)
    done = counters["completed"] + counters["failed"] + counters["canceled"]
    filled = round(width * done / total)
    return (
        f"[{'#' * filled}{'.' * (width - filled)}] {done}/{counters['jobsTotal']}"
        f"  completed {counters['completed']}  failed {counters['failed']}"
        f"  canceled {counters['canceled']}  running {counters['running']}"
        f"  queued {counters['queued'] + counters['pending']}  blocked {counters['blocked']}"
    )
