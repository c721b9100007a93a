"""SIGTERM: /readyz turns 503 first, in-flight requests finish, websockets get a close
frame, and a process pinned by a request still exits within the window."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

REPO = Path(__file__).resolve().parents[1]
DRAIN, SHUTDOWN = 1.0, 2.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(
    database_url: str, redis_url: str, tmp_path: Path
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "BROKER_URL": redis_url,
        "BATCHGRAPH_DRAIN_SECONDS": str(DRAIN),
        "BATCHGRAPH_SHUTDOWN_SECONDS": str(SHUTDOWN),
    }
    log = (tmp_path / "server.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.drain_server", str(port)],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            pytest.fail((tmp_path / "server.log").read_text())
        time.sleep(0.1)
    yield base, process
    if process.poll() is None:
        process.kill()
        process.wait()


async def test_sigterm_drains_then_stops(server: tuple[str, subprocess.Popen[bytes]]) -> None:
    base, process = server
    ws = await websockets.connect(
        base.replace("http", "ws") + "/graphql", subprotocols=["graphql-transport-ws"]
    )
    await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
    assert json.loads(await ws.recv())["type"] == "connection_ack"
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        # In flight across the whole drain window and into the shutdown.
        slow = asyncio.ensure_future(client.get("/slow", params={"seconds": DRAIN + 1}))
        await asyncio.sleep(0.2)
        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.2)
        ready = await client.get("/readyz")
        assert (ready.status_code, ready.json()) == (503, {"status": "draining"})
        assert (await client.get("/healthz")).status_code == 200  # still serving
        answered = await slow
        assert (answered.status_code, answered.json()) == (200, {"slow": "done"})
    with pytest.raises(ConnectionClosed) as closed:
        await asyncio.wait_for(ws.recv(), DRAIN + SHUTDOWN + 2)
    assert closed.value.rcvd is not None  # a close frame, not a dropped connection
    assert closed.value.rcvd.code == 1012  # service restart
    code = await asyncio.to_thread(process.wait, DRAIN + SHUTDOWN + 5)
    assert time.monotonic() - signalled < DRAIN + SHUTDOWN + 2
    assert code in (0, -signal.SIGTERM)


async def test_a_pinned_process_still_exits_within_the_window(
    server: tuple[str, subprocess.Popen[bytes]],
) -> None:
    base, process = server
    spinning = subprocess.Popen(  # noqa: ASYNC220 - a client in another process, not awaited
        [sys.executable, "-c", f"import httpx; httpx.get('{base}/spin', timeout=200)"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        await asyncio.sleep(1.0)  # the loop is pinned now
        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(process.wait, 30)
        assert time.monotonic() - signalled < DRAIN + SHUTDOWN + 3
        assert code != 0  # abandoned by the watchdog
    finally:
        spinning.kill()
        spinning.wait()
