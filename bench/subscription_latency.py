"""Status change → subscriber latency, with 1, 1,000 (and 10,000) open subscriptions.

Starts `batchgraph serve --no-worker` (embedded services unless DATABASE_URL /
BROKER_URL are set), opens S graphql-transport-ws subscriptions to
jobStatusChanged of one batch, then makes CHANGES job status changes (cancelJob
through the API, one at a time) and measures, for every (subscriber, change), the
time from sending the mutation to receiving the event. Prints p50 / p99 / max.

    .venv/bin/python bench/subscription_latency.py [--subscribers 1,1000,10000] [--changes 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import websockets
from harness import free_port, serve
from websockets.typing import Subprotocol

QUERY = "subscription($b: ID!) { jobStatusChanged(batch: $b) { eventId toStatus } }"


async def open_subscription(url: str, token: str, batch: str) -> websockets.ClientConnection:
    ws = await websockets.connect(
        url, subprotocols=[Subprotocol("graphql-transport-ws")], max_queue=None
    )
    await ws.send(
        json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}})
    )
    assert json.loads(await ws.recv())["type"] == "connection_ack"
    await ws.send(
        json.dumps(
            {"id": "1", "type": "subscribe", "payload": {"query": QUERY, "variables": {"b": batch}}}
        )
    )
    return ws


async def measure(base: str, token: str, subscribers: int, changes: int) -> list[float]:
    gql = f"{base}/graphql"
    async with httpx.AsyncClient(timeout=60) as client:

        async def call(query: str, **variables: object) -> dict:  # type: ignore[type-arg]
            r = await client.post(
                gql,
                json={"query": query, "variables": variables},
                headers={"authorization": f"Bearer {token}"},
            )
            body = r.json()
            assert "errors" not in body, body
            return body["data"]  # type: ignore[no-any-return]

        name = f"bench-{subscribers}"
        await call(
            """mutation($n: String!) { createTaskType(input: {name: $n}) {
            __typename } }""",
            n=name,
        )
        created = await call(
            """mutation($d: JSON!) { createBatch(input: {title: "lat",
            definition: $d}) { ... on BatchCreated { batch { id } } } }""",
            d={
                "recipe": {"nodes": [{"name": "n", "taskType": name}]},
                "inputs": [{} for _ in range(changes)],
            },
        )
        batch = created["createBatch"]["batch"]["id"]
        for _ in range(200):  # the batch's jobs exist once its creation message ran
            jobs = await call(
                """query($b: ID!) { jobs(batch: $b, first: 100) {
                edges { node { id } } } }""",
                b=batch,
            )
            ids = [e["node"]["id"] for e in jobs["jobs"]["edges"]]
            if len(ids) == changes:
                break
            await asyncio.sleep(0.1)
        ws_url = gql.replace("http://", "ws://")
        sockets = []
        for start in range(0, subscribers, 100):  # open them in waves
            sockets += await asyncio.gather(
                *(
                    open_subscription(ws_url, token, batch)
                    for _ in range(min(100, subscribers - start))
                )
            )
        # One reader per socket for the whole run: an arrival is a time stamp, nothing
        # parsed (the client shares the machine's two cores with the server).
        arrivals: list[float] = []
        arrived = asyncio.Event()

        async def read(ws: websockets.ClientConnection) -> None:
            async for message in ws:
                if '"next"' in message:
                    arrivals.append(time.perf_counter())
                    if len(arrivals) >= expected:
                        arrived.set()

        expected = 0
        readers = [asyncio.ensure_future(read(ws)) for ws in sockets]
        await asyncio.sleep(1.0)
        latencies: list[float] = []
        try:
            for job in ids:
                expected = len(arrivals) + len(sockets)
                arrived.clear()
                sent = time.perf_counter()
                await call("mutation($j: ID!) { cancelJob(id: $j) { __typename } }", j=job)
                await asyncio.wait_for(arrived.wait(), 60)
                latencies += [t - sent for t in arrivals[expected - len(sockets) : expected]]
        finally:
            for reader in readers:
                reader.cancel()
            await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    return latencies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--subscribers", default="1,1000", help="comma-separated subscription counts"
    )
    parser.add_argument("--changes", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bg-bench-subs-") as home:
        env = {**os.environ, "BATCHGRAPH_HOME": home, "BATCHGRAPH_PORT": str(free_port())}
        with serve(env, Path(home) / "serve.log") as (base, token):
            assert token is not None
            print(
                f"{args.changes} status changes; latency from sending the mutation to each"
                " subscriber receiving the event (one API process, loopback, 2 cores)"
            )
            print(f"{'subscriptions':>13} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
            for subscribers in (int(n) for n in args.subscribers.split(",")):
                found = sorted(
                    x * 1000 for x in asyncio.run(measure(base, token, subscribers, args.changes))
                )
                q = (
                    statistics.quantiles(found, n=100, method="inclusive")
                    if len(found) > 1
                    else found * 99
                )
                print(
                    f"{subscribers:>13} {q[49]:>8.1f} {q[98]:>8.1f} {found[-1]:>8.1f}", flush=True
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
