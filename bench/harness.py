"""What the bench scripts share: a real `batchgraph serve` on a free loopback port."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGINT) -> None:
    process.send_signal(sig)
    try:
        process.wait(60)
    except subprocess.TimeoutExpired:
        process.kill()


@contextlib.contextmanager
def serve(env: dict[str, str], log: Path, *args: str) -> Iterator[tuple[str, str | None]]:
    """`batchgraph serve ARGS` with ``env`` (which sets BATCHGRAPH_PORT); yields its base
    URL and the first-start admin token (None if the database had an admin already).

    The rate limit is off unless ``env`` sets it: benches measure throughput."""
    env = {"BATCHGRAPH_RATE_LIMIT_ENABLED": "false", **env}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "launcher", "serve", *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{env['BATCHGRAPH_PORT']}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"serve did not get ready:\n{log.read_text()}")
            time.sleep(0.2)
        tokens = [w for w in log.read_text().split() if w.startswith("bg_")]
        yield base, tokens[0] if tokens else None
    finally:
        stop(process)
