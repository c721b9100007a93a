"""Subscriptions over graphql-transport-ws, fed by LISTEN/NOTIFY (a real server)."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import pytest
import websockets
from sqlalchemy import select

from db.enums import JobStatus, TokenRole
from db.models import Job, JobEvent
from db.session import Database
from db.uow import UnitOfWork
from domain.jobs.rules import Initiator
from tests.factories import make_batch, make_task_type, make_token, move_job

PROTOCOL = "graphql-transport-ws"
EVENTS = """subscription($batch: ID, $after: Int) { jobStatusChanged(batch: $batch,
  afterEventId: $after) { eventId node fromStatus toStatus reason } }"""


def gid(kind: str, pk: int) -> str:
    return base64.b64encode(f"{kind}:{pk}".encode()).decode()


class Subscriber:
    def __init__(self, ws: Any) -> None:
        self.ws = ws

    async def next(self, wait: float = 10) -> dict[str, Any]:
        message = json.loads(await asyncio.wait_for(self.ws.recv(), wait))
        assert message["type"] == "next", message
        assert "errors" not in message["payload"], message["payload"]
        return message["payload"]["data"]  # type: ignore[no-any-return]


async def subscribe(
    live_server: str, token: str | None, query: str, variables: dict[str, Any]
) -> Any:
    ws = await websockets.connect(
        live_server.replace("http", "ws") + "/graphql", subprotocols=[PROTOCOL]
    )
    init = {"Authorization": f"Bearer {token}"} if token else {}
    await ws.send(json.dumps({"type": "connection_init", "payload": init}))
    assert json.loads(await ws.recv())["type"] == "connection_ack"
    await ws.send(
        json.dumps(
            {"id": "1", "type": "subscribe", "payload": {"query": query, "variables": variables}}
        )
    )
    return ws


async def move(
    db: Database, job_id: int, target: JobStatus, by: Initiator, *, commit: bool = True
) -> None:
    async with UnitOfWork(db.write_session) as uow:
        await move_job(uow, job_id, target, by)
        if commit:
            await uow.commit()


@pytest.fixture
async def setup(db: Database) -> tuple[str, int, list[int]]:
    await make_task_type(db, "t")
    _, token = await make_token(db, role=TokenRole.READER)
    batch = await make_batch(
        db, {"recipe": {"nodes": [{"name": "n", "taskType": "t"}]}, "inputs": [{}, {}]}
    )
    async with db.read_session() as s:
        ids = list(await s.scalars(select(Job.id).where(Job.batch_id == batch.id).order_by(Job.id)))
    return token, batch.id, ids


async def test_live_events_arrive_in_order_and_rollbacks_announce_nothing(
    live_server: str, db: Database, setup: tuple[str, int, list[int]]
) -> None:
    token, batch_id, (first, _) = setup
    ws = await subscribe(live_server, token, EVENTS, {"batch": gid("Batch", batch_id)})
    try:
        sub = Subscriber(ws)
        await asyncio.sleep(0.2)  # subscribed (the server listens before replaying)
        await move(db, first, JobStatus.RUNNING, Initiator.WORKER, commit=False)  # rolled back
        await move(db, first, JobStatus.RUNNING, Initiator.WORKER)
        await move(db, first, JobStatus.COMPLETED, Initiator.WORKER)
        got = [(await sub.next())["jobStatusChanged"] for _ in range(2)]
        assert [(e["fromStatus"], e["toStatus"]) for e in got] == [
            ("QUEUED", "RUNNING"),
            ("RUNNING", "COMPLETED"),
        ]
        assert got[0]["eventId"] < got[1]["eventId"]
        with pytest.raises(TimeoutError):  # the rolled-back change was never announced
            await sub.next(wait=0.5)
    finally:
        await ws.close()


async def test_after_event_id_replays_what_was_missed_then_goes_live_without_duplicates(
    live_server: str, db: Database, setup: tuple[str, int, list[int]]
) -> None:
    token, batch_id, (first, second) = setup
    await move(db, first, JobStatus.RUNNING, Initiator.WORKER)
    async with db.read_session() as s:
        events = list(
            await s.scalars(
                select(JobEvent.id).where(JobEvent.batch_id == batch_id).order_by(JobEvent.id)
            )
        )
    seen_until = events[1]  # the client saw the first two events before it disconnected
    ws = await subscribe(
        live_server, token, EVENTS, {"batch": gid("Batch", batch_id), "after": seen_until}
    )
    try:
        sub = Subscriber(ws)
        replayed = [
            (await sub.next())["jobStatusChanged"]["eventId"] for _ in range(len(events) - 2)
        ]
        assert replayed == events[2:]
        await move(db, second, JobStatus.CANCELED, Initiator.USER)
        live = (await sub.next())["jobStatusChanged"]
        assert (live["toStatus"], live["eventId"] > events[-1]) == ("CANCELED", True)
        with pytest.raises(TimeoutError):
            await sub.next(wait=0.5)  # nothing twice
    finally:
        await ws.close()


async def test_batch_progress_sends_a_snapshot_then_throttled_updates(
    live_server: str, db: Database, setup: tuple[str, int, list[int]]
) -> None:
    token, batch_id, (first, second) = setup
    query = """subscription($b: ID!) { batchProgress(batch: $b) { isCreationDone
        counters { queued running completed } } }"""
    ws = await subscribe(live_server, token, query, {"b": gid("Batch", batch_id)})
    try:
        sub = Subscriber(ws)
        snapshot = (await sub.next())["batchProgress"]
        assert snapshot == {
            "isCreationDone": True,
            "counters": {"queued": 2, "running": 0, "completed": 0},
        }
        for job_id in (first, second):  # a burst of four changes...
            await move(db, job_id, JobStatus.RUNNING, Initiator.WORKER)
            await move(db, job_id, JobStatus.COMPLETED, Initiator.WORKER)
        update = (await sub.next())["batchProgress"]
        while update["counters"]["completed"] < 2:  # ...arrives as few updates
            update = (await sub.next())["batchProgress"]
        assert update["counters"] == {"queued": 0, "running": 0, "completed": 2}
    finally:
        await ws.close()


async def test_subscriptions_are_authorized_like_queries(
    live_server: str, db: Database, setup: tuple[str, int, list[int]]
) -> None:
    _, batch_id, _ = setup
    ws = await subscribe(live_server, None, EVENTS, {"batch": gid("Batch", batch_id)})
    try:  # anonymous, private workspace: as if it did not exist
        message = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert message["type"] in ("error", "next")
        errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
        assert errors[0]["extensions"]["code"] == "NOT_FOUND"
    finally:
        await ws.close()
    ws = await subscribe(live_server, None, "subscription { workerStatusChanged { name } }", {})
    try:
        message = json.loads(await asyncio.wait_for(ws.recv(), 10))
        errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
        assert errors[0]["extensions"]["code"] == "UNAUTHENTICATED"
    finally:
        await ws.close()


async def test_a_change_through_one_api_process_reaches_a_subscriber_of_another(
    live_server: str, second_server: str, db: Database, setup: tuple[str, int, list[int]]
) -> None:
    _, batch_id, (first, _) = setup
    _, writer = await make_token(db, role=TokenRole.WRITER)
    ws = await subscribe(second_server, writer, EVENTS, {"batch": gid("Batch", batch_id)})
    try:
        sub = Subscriber(ws)
        await asyncio.sleep(0.2)
        import httpx

        async with httpx.AsyncClient() as client:  # the change goes through the other API
            response = await client.post(
                f"{live_server}/graphql",
                json={
                    "query": "mutation($id: ID!) { cancelJob(id: $id) { __typename } }",
                    "variables": {"id": gid("Job", first)},
                },
                headers={"authorization": f"Bearer {writer}"},
            )
        assert response.json()["data"]["cancelJob"]["__typename"] == "JobUpdated"
        event = (await sub.next())["jobStatusChanged"]
        assert (event["fromStatus"], event["toStatus"]) == ("QUEUED", "CANCELED")
    finally:
        await ws.close()


@pytest.fixture
async def two_nodes(db: Database) -> tuple[str, int, list[int]]:
    """A batch whose two jobs (independent nodes) can change in concurrent transactions."""
    await make_task_type(db, "t")
    _, token = await make_token(db, role=TokenRole.READER)
    nodes = [{"name": "a", "taskType": "t"}, {"name": "b", "taskType": "t"}]
    batch = await make_batch(db, {"recipe": {"nodes": nodes}, "inputs": [{}]})
    async with db.read_session() as s:
        ids = list(await s.scalars(select(Job.id).where(Job.batch_id == batch.id).order_by(Job.id)))
    return token, batch.id, ids


async def test_an_event_committing_late_is_delivered_before_later_ids_never_missed(
    live_server: str, db: Database, two_nodes: tuple[str, int, list[int]]
) -> None:
    """The replay window: the first job's event gets the smaller id, but its transaction
    commits after the second's. Events are delivered in id order up to the horizon, so
    the larger id waits for the smaller one, and resuming after any delivered id misses
    nothing."""
    token, batch_id, (first, second) = two_nodes
    ws = await subscribe(live_server, token, EVENTS, {"batch": gid("Batch", batch_id)})
    try:
        sub = Subscriber(ws)
        await asyncio.sleep(0.2)
        async with UnitOfWork(db.write_session) as slow:
            await move_job(slow, first, JobStatus.RUNNING, Initiator.WORKER)
            # the event row exists: its id is allocated
            await move(db, second, JobStatus.RUNNING, Initiator.WORKER)  # commits first
            with pytest.raises(TimeoutError):  # held back: a smaller id may still come
                await sub.next(wait=0.5)
            await slow.commit()
        got = [(await sub.next())["jobStatusChanged"] for _ in range(2)]
        ids = [e["eventId"] for e in got]
        assert ids == sorted(ids)
        assert len(set(ids)) == 2
    finally:
        await ws.close()
    # A client that saw only the first of the two resumes after it: it gets the second.
    again = await subscribe(
        live_server, token, EVENTS, {"batch": gid("Batch", batch_id), "after": ids[0]}
    )
    try:
        assert (await Subscriber(again).next())["jobStatusChanged"]["eventId"] == ids[1]
    finally:
        await again.close()


async def test_a_transaction_rolled_back_releases_what_it_held_back(
    live_server: str, db: Database, two_nodes: tuple[str, int, list[int]]
) -> None:
    token, batch_id, (first, second) = two_nodes
    ws = await subscribe(live_server, token, EVENTS, {"batch": gid("Batch", batch_id)})
    try:
        sub = Subscriber(ws)
        await asyncio.sleep(0.2)
        async with UnitOfWork(db.write_session) as doomed:
            await move_job(doomed, first, JobStatus.RUNNING, Initiator.WORKER)
            await move(db, second, JobStatus.RUNNING, Initiator.WORKER)
            # leaving the block without commit rolls back
        event = (await sub.next())["jobStatusChanged"]
        assert (event["node"], event["toStatus"]) == ("b", "RUNNING")
        with pytest.raises(TimeoutError):
            await sub.next(wait=0.5)
    finally:
        await ws.close()


async def test_subscribers_of_one_selection_share_one_rendering(
    live_server: str, db: Database, setup: tuple[str, int, list[int]]
) -> None:
    """Aliases and fragments are honoured per subscriber; the event is rendered once per
    distinct selection, not once per subscriber."""
    token, batch_id, (first, _) = setup
    plain = [
        await subscribe(live_server, token, EVENTS, {"batch": gid("Batch", batch_id)})
        for _ in range(3)
    ]
    fancy_query = """subscription($batch: ID) { changed: jobStatusChanged(batch: $batch) {
        ...E __typename } } fragment E on JobStatusEvent { to: toStatus job at }"""
    fancy = await subscribe(live_server, token, fancy_query, {"batch": gid("Batch", batch_id)})
    from graphql_api.fanout import _HUBS

    try:
        await asyncio.sleep(0.3)
        before = sum(hub.renders for hub in list(_HUBS))
        await move(db, first, JobStatus.RUNNING, Initiator.WORKER)
        for ws in plain:
            assert (await Subscriber(ws).next())["jobStatusChanged"]["toStatus"] == "RUNNING"
        got = (await Subscriber(fancy).next())["changed"]
        assert got == {
            "to": "RUNNING",
            "job": gid("Job", first),
            "at": got["at"],
            "__typename": "JobStatusEvent",
        }
        assert sum(hub.renders for hub in list(_HUBS)) - before == 2  # two selections
    finally:
        for ws in [*plain, fancy]:
            await ws.close()
