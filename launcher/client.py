"""A small client of batchgraph's own API, for the command line: every remote command
is one GraphQL document below, sent as any client would send it."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import websockets
from websockets.typing import Subprotocol

from db.config import Settings
from launcher.runtime import running_server_url

CREATE = """mutation Submit($input: BatchInput!) { createBatch(input: $input) { __typename
  ... on BatchCreated { batch { id title } validation { plannedJobs } }
  ... on InvalidBatch { validation { errors { name description path node inputIndex } } }
  ... on Error { code message } } }"""
PROGRESS = """subscription Progress($b: ID!) { batchProgress(batch: $b) { isCreationDone
  counters { jobsTotal pending blocked queued running completed failed canceled } } }"""
FAILED_JOBS = """query FailedJobs($b: ID!, $first: Int!) { batch(id: $b) {
  jobs(filter: {statuses: [FAILED]}, first: $first) { totalCount
    edges { node { id node attempt error { code message category } } } } } }"""
BATCHES = """query Batches($workspace: String, $first: Int!) {
  batches(filter: {workspace: $workspace}, orderBy: {field: ID, direction: DESC}, first: $first) {
    totalCount edges { node { id title isCreationDone isSuperseded createdAt
      workspace { name }
      counters { jobsTotal pending blocked queued running completed failed canceled } } } } }"""
KIND = """query Kind($id: ID!) { node(id: $id) { __typename } }"""
CANCEL_BATCH = """mutation CancelBatch($id: ID!, $reason: String) {
  cancelBatch(id: $id, reason: $reason) { __typename
    ... on BatchCanceled { canceledJobs batch { id title } }
    ... on ValidationFailed { violations { path message } }
    ... on Error { code message } } }"""
CANCEL_JOB = """mutation CancelJob($id: ID!, $reason: String) {
  cancelJob(id: $id, reason: $reason) { __typename
    ... on JobUpdated { job { id node status } }
    ... on ValidationFailed { violations { path message } }
    ... on Error { code message } } }"""
RETRY_JOB = """mutation RetryJob($id: ID!) { retryJob(id: $id) { __typename
  ... on JobUpdated { job { id node status attempt } }
  ... on Error { code message } } }"""
RETRY_BATCH = """mutation RetryBatch($id: ID!, $canceled: Boolean) {
  retryBatch(id: $id, includeCanceled: $canceled) { __typename
    ... on BatchRetried { retriedJobs batch { id title } }
    ... on Error { code message } } }"""
WORKERS = """query Workers($connected: Boolean, $first: Int!) {
  workers(connected: $connected, first: $first) { totalCount edges { node {
    name kind host concurrency isConnected enabled isTokenEnabled lastSeenAt
    jobs(filter: {statuses: [RUNNING]}) { totalCount } } } } }"""


class ClientError(Exception):
    """The server refused, or could not be reached; the message says which and why."""


def server_url(settings: Settings, given: str | None = None) -> str:
    """--url, else BATCHGRAPH_URL, else the server running from BATCHGRAPH_HOME, else
    BATCHGRAPH_HOST/BATCHGRAPH_PORT (by default http://127.0.0.1:8000/graphql)."""
    return (
        given
        or settings.url
        or running_server_url(settings.home)
        or f"http://{settings.host}:{settings.port}/graphql"
    )


def server_token(settings: Settings, given: str | None = None) -> str | None:
    if given:
        return given
    return settings.token.get_secret_value() if settings.token is not None else None


@dataclass(frozen=True)
class Client:
    url: str
    token: str | None

    def call(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """The ``data`` of one request; ClientError for top-level errors."""
        if urllib.parse.urlsplit(self.url).scheme not in ("http", "https"):
            raise ClientError(
                f"{self.url!r} is not a server URL: give one like http://127.0.0.1:8000/graphql"
                " (--url or BATCHGRAPH_URL)"
            )
        request = urllib.request.Request(
            self.url,
            data=json.dumps({"query": query, "variables": variables or {}}).encode(),
            headers={
                "content-type": "application/json",
                **({"authorization": f"Bearer {self.token}"} if self.token else {}),
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            raw = exc.read() or b"{}"
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ClientError(
                f"cannot reach {self.url}: {reason}. Is the server running (`make run`)?"
            ) from None
        try:
            body = json.loads(raw)
        except ValueError:
            raise ClientError(f"{self.url} did not answer with JSON") from None
        if body.get("errors"):
            error = body["errors"][0]
            code = (error.get("extensions") or {}).get("code", "ERROR")
            hint = (
                " (give one: BATCHGRAPH_TOKEN or --token)"
                if code in ("UNAUTHENTICATED", "FORBIDDEN") and not self.token
                else ""
            )
            raise ClientError(f"{code}: {error.get('message')}{hint}")
        data = body.get("data")
        if not isinstance(data, dict):
            raise ClientError(f"{self.url} answered without data")
        return data

    async def progress(self, batch_id: str) -> AsyncIterator[dict[str, Any]]:
        """batchProgress updates until every job of a fully created batch is final."""
        ws_url = self.url.replace("http://", "ws://").replace("https://", "wss://")
        try:
            async with websockets.connect(
                ws_url, subprotocols=[Subprotocol("graphql-transport-ws")]
            ) as ws:
                init = {"Authorization": f"Bearer {self.token}"} if self.token else {}
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
                    if message.get("type") == "error" or (message.get("payload") or {}).get(
                        "errors"
                    ):
                        raise ClientError(f"subscription failed: {message}")
                    if message.get("type") != "next":
                        continue
                    update = message["payload"]["data"]["batchProgress"]
                    yield update
                    if finished(update):
                        return
        except (OSError, websockets.WebSocketException) as exc:
            raise ClientError(f"the live connection to {ws_url} failed: {exc}") from None


def finished(update: dict[str, Any]) -> bool:
    c = update["counters"]
    done = c["completed"] + c["failed"] + c["canceled"]
    return bool(update["isCreationDone"]) and done == c["jobsTotal"]
