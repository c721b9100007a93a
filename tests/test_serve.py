"""`batchgraph serve` and `batchgraph worker` as real processes on the embedded services.

This is what `make run` does on a fresh machine: no DATABASE_URL, no BROKER_URL.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

TIMEOUT = 60.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(home: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "BROKER_URL")}
    env.update(BATCHGRAPH_HOME=str(home), BATCHGRAPH_PORT=str(port), BATCHGRAPH_DRAIN_SECONDS="0.5")
    return env


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    out = log.open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "launcher", *args],
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
    )


def _get(url: str, body: dict[str, Any] | None = None, token: str | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method="POST" if data else "GET")
    request.add_header("content-type", "application/json")
    if token:
        request.add_header("authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def _wait_ready(base: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"serve exited early:\n{log.read_text()}")
        try:
            if _get(f"{base}/readyz") == {"status": "ready"}:
                return
        except OSError:
            pass
        time.sleep(0.2)
    pytest.fail(f"serve was not ready in {TIMEOUT}s:\n{log.read_text()}")


def _stop(process: subprocess.Popen[bytes], sig: int = signal.SIGINT) -> int:
    process.send_signal(sig)
    try:
        return process.wait(TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail("the process did not stop on Ctrl-C")


def _processes_using(path: Path) -> list[str]:
    """Processes whose command line, working directory or environment names ``path``.

    The working directory matters: redis-server's command line names only its socket.
    """
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            cwd = os.readlink(proc / "cwd")
            environ = (proc / "environ").read_bytes().decode(errors="replace")
        except OSError:  # gone, or not ours to read
            continue
        # Workers run from the repository: their environment names the data folder.
        if str(path) in cmdline or cwd.startswith(str(path)) or str(path) in environ:
            found.append(f"{proc.name} (cwd {cwd}): {cmdline}")
    return found


STAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"


def _startup_block(log: str, url: str) -> str:
    """The block printed once started: the URL, the one-time token inside it, no log
    line interleaved. Returns the token."""
    lines = log.splitlines()
    top = next(i for i, line in enumerate(lines) if line.startswith("╭"))
    bottom = next(i for i, line in enumerate(lines) if line.startswith("╰"))
    block = lines[top : bottom + 1]
    assert all(line.startswith("│") for line in block[1:-1]), block
    assert any("batchgraph is up" in line for line in block)
    assert any(url in line for line in block)
    [secret] = [w for w in " ".join(block).split() if w.startswith("bg_")]
    assert sum(secret in line for line in lines) == 1  # printed once, in the block only
    # Printed after start-up: the API's start-up log lines come before it.
    assert not any(re.match(rf"{STAMP} \w+ +api:", line) for line in lines[bottom + 1 :]), log
    return secret


def _cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "launcher", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


def _the_command_line_finds_the_server(
    env: dict[str, str], home: Path, tmp_path: Path, secret: str
) -> None:
    """From another folder, with only BATCHGRAPH_HOME: no URL, no port given."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    cli_env = {k: v for k, v in env.items() if k not in ("BATCHGRAPH_PORT", "BATCHGRAPH_URL")}
    cli_env.update(BATCHGRAPH_TOKEN=secret, COLUMNS="120")
    listed = _cli(["workers"], cli_env, elsewhere)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.count("fleet") == 2, listed.stdout
    batches = _cli(["batches"], cli_env, elsewhere)
    assert batches.returncode == 0, batches.stderr
    assert "e2e" in batches.stdout
    assert "completed" in batches.stdout
    # token create from another folder uses the server's database (no new one there).
    created = _cli(
        ["token", "create", "--role", "reader", "--owner", "elsewhere"], cli_env, elsewhere
    )
    assert created.returncode == 0, created.stderr
    assert "Traceback" not in created.stderr
    assert not (elsewhere / ".batchgraph").exists()
    base = json.loads((home / "server.json").read_text())["url"]
    who = _get(base, {"query": "{ viewer { owner } }"}, token=created.stdout.strip())
    assert who["data"] == {"viewer": {"owner": "elsewhere"}}


def _run_and_watch(url: str, token: str, *, items: int) -> dict[str, Any]:
    import asyncio

    from launcher import client

    api = client.Client(url, token)
    api.call(
        """mutation { createTaskType(input: {name: "echo",
        implementation: "builtin.echo"}) { __typename } }""",
    )
    created = api.call(
        client.CREATE,
        {
            "input": {
                "title": "e2e",
                "definition": {
                    "recipe": {"nodes": [{"name": "n", "taskType": "echo"}]},
                    "inputs": [{"i": i} for i in range(items)],
                },
            }
        },
    )["createBatch"]
    assert created["__typename"] == "BatchCreated", created

    async def watch() -> dict[str, Any]:
        last: dict[str, Any] = {}
        async for update in api.progress(created["batch"]["id"]):
            last = update
        return last

    return asyncio.run(asyncio.wait_for(watch(), TIMEOUT))


def test_serve_and_worker_share_embedded_services_and_stop_cleanly(tmp_path: Path) -> None:
    home = tmp_path / "home"
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = _env(home, port)

    serve = _start(["serve"], env, tmp_path / "serve.log")  # with its own worker
    worker = _start(
        ["worker", "--processes", "1", "--threads", "1"], env, tmp_path / "worker.log"
    )  # and one more, started together
    try:
        _wait_ready(base, serve, tmp_path / "serve.log")
        log = (tmp_path / "serve.log").read_text()
        secret = _startup_block(log, f"{base}/graphql")
        # serve notes where it listens, for the command line run from anywhere.
        assert json.loads((home / "server.json").read_text())["url"] == f"{base}/graphql"
        who = _get(f"{base}/graphql", {"query": "{ viewer { role } }"}, token=secret)
        assert who["data"] == {"viewer": {"role": "ADMIN"}}
        assert worker.poll() is None, (tmp_path / "worker.log").read_text()
        # Every fleet worker process registered (serve's 1 + the extra worker's 1),
        # named after the host with suffixes, and heartbeats its metadata.
        query = "{ workers(connected: true) { edges { node { name isConnected kind metadata } } } }"
        deadline = time.monotonic() + TIMEOUT
        while True:
            edges = _get(f"{base}/graphql", {"query": query}, token=secret)["data"]["workers"]
            if len(edges["edges"]) == 2 or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        fleet = [e["node"] for e in edges["edges"]]
        assert len(fleet) == 2, fleet
        assert {w["kind"] for w in fleet} == {"FLEET"}
        assert all("builtin.echo" in w["metadata"]["implementations"] for w in fleet)
        # A batch runs on those fleet processes while a subscriber follows it live:
        # the changes happen in worker processes, the events reach the API's subscriber.
        final = _run_and_watch(f"{base}/graphql", secret, items=20)
        assert final["isCreationDone"] is True
        assert final["counters"]["completed"] == 20
        _the_command_line_finds_the_server(env, home, tmp_path, secret)
        log = (tmp_path / "serve.log").read_text()
        # One log format for the API and its worker; no per-request access lines.
        assert re.search(rf"^{STAMP} INFO +worker:\d+ jobs\.presence: registered as ", log, re.M)
        assert re.search(rf"^{STAMP} INFO +api:\d+ launcher.runtime: embedded Postgre", log, re.M)
        assert "/readyz" not in log
        assert "POST /graphql" not in log
    finally:
        serve_code = _stop(serve)
        worker_code = _stop(worker)
    assert serve_code == 0, (tmp_path / "serve.log").read_text()
    assert worker_code == 0, (tmp_path / "worker.log").read_text()
    assert not (home / "server.json").exists()  # it no longer listens
    deadline = time.monotonic() + 15
    while _processes_using(home) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _processes_using(home) == [], "embedded servers or workers left running"

    # A restart keeps the data: the admin exists, so no new secret is printed.
    again = _start(["serve"], env, tmp_path / "again.log")
    try:
        _wait_ready(base, again, tmp_path / "again.log")
        assert "bg_" not in (tmp_path / "again.log").read_text()
        # The workers of the first run disconnected cleanly when they stopped.
        gone = _get(
            f"{base}/graphql",
            {"query": "{ workers(connected: false) { edges { node { disconnectedAt lostAt } } } }"},
            token=secret,
        )
        stopped = [e["node"] for e in gone["data"]["workers"]["edges"]]
        assert len(stopped) == 2
        assert all(w["disconnectedAt"] and not w["lostAt"] for w in stopped)
        who = _get(f"{base}/graphql", {"query": "{ viewer { role } }"}, token=secret)
        assert who["data"] == {"viewer": {"role": "ADMIN"}}
    finally:
        # A process manager stops it with SIGTERM: its worker must stop too.
        assert _stop(again, signal.SIGTERM) == 0
    deadline = time.monotonic() + 15
    while _processes_using(home) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _processes_using(home) == [], "SIGTERM left embedded servers or workers running"


def test_serve_with_several_api_processes_on_one_port(tmp_path: Path) -> None:
    """`serve --workers 2`: two API processes share the port; each answers; both stop."""
    home = tmp_path / "home"
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    serve = _start(
        ["serve", "--no-worker", "--workers", "2", "--port", str(port)],
        _env(home, port),
        tmp_path / "serve.log",
    )
    try:
        _wait_ready(base, serve, tmp_path / "serve.log")
        secret = _startup_block((tmp_path / "serve.log").read_text(), f"{base}/graphql")
        answered = {
            _get(f"{base}/graphql", {"query": "{ viewer { role } }"}, token=secret)["data"][
                "viewer"
            ]["role"]
            for _ in range(20)
        }
        assert answered == {"ADMIN"}
        children = subprocess.run(
            ["pgrep", "-P", str(serve.pid)], capture_output=True, text=True, check=False
        ).stdout.split()
        assert len(children) >= 2, children  # the API processes (uvicorn's supervisor)
    finally:
        assert _stop(serve, signal.SIGTERM) == 0, (tmp_path / "serve.log").read_text()
    # Gone within a bound (multiprocessing's resource tracker outlives its parent by a
    # moment: it leaves when the last process holding its pipe has exited).
    deadline = time.monotonic() + 10
    while _processes_using(home) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _processes_using(home) == [], "several API processes left something running"


def test_a_port_in_use_is_refused_at_once_with_how_to_pick_another(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from launcher.cli import main

    monkeypatch.setenv("BATCHGRAPH_HOME", str(tmp_path))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert f"127.0.0.1:{port}" in err
    assert "BATCHGRAPH_PORT" in err
    assert not (tmp_path / "server.json").exists()  # nothing started
