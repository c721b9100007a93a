"""Several machines (issue 9, item 6): batchgraph on three "hosts" — Linux network
namespaces on this machine, joined by a bridge — with a worker host killed midway.

* host A: a private PostgreSQL (pgserver's binaries) and a private broker, listening on
  A's address: RabbitMQ (the machine's rabbitmq-server package, run as a node of its
  own inside A, where its epmd and ports cannot meet the machine's node), or with
  ``--broker redis`` a private redis-server;
* host B: ``batchgraph serve --no-worker`` bound to B's address (it migrates the database);
* host C: ``batchgraph worker --processes 2 --threads 4``.

From the root namespace (on the bridge too) it creates a batch of ``--jobs`` (10,000)
``builtin.echo`` jobs over the API, kills host C midway (kill -9 of every process in
C's namespace), starts a replacement worker on a fourth host D, waits until every job
has ended, and counts from the database: completed exactly once, stranded, duplicate
completions. Prints throughput and counts; exit 1 on a violation, 2 on a time-out.

Requires root (``ip netns``). Everything it creates — namespaces, bridge, veth pairs,
processes, folders — is removed at the end, also on failure or Ctrl-C.

    .venv/bin/python -m bench.multihost [--jobs 10000] [--broker rabbitmq|redis]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
import psutil

from bench import chaos
from bench.private import (
    CLI_MODULE,
    REPO,
    Fleet,
    PrivatePostgres,
    PrivateRabbitMQ,
    PrivateRedis,
    kill_all,
    netns_pids,
    wait_until,
    worker_env,
)

API_PORT = 8000


@dataclass(frozen=True)
class Host:
    name: str
    netns: str
    address: str


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


class Network:
    """A bridge in the root namespace and one namespace per host, each joined to the
    bridge by a veth pair, on a /24 of 10.231.0.0/16 that no route here uses yet."""

    def __init__(self) -> None:
        self.tag = f"{os.getpid() % 100000:05d}"  # names of our own: several runs never meet
        self.bridge = f"bgmh{self.tag}br"
        self.hosts: list[Host] = []
        self._veths: list[str] = []
        taken = subprocess.run(
            ["ip", "-4", "route"], capture_output=True, text=True, check=True
        ).stdout
        third = next(k for k in range(10, 250) if f"10.231.{k}." not in taken)
        self.prefix = f"10.231.{third}"
        self.gateway = f"{self.prefix}.1"
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")

    def add(self, name: str) -> Host:
        host = Host(name, f"bgmh-{self.tag}-{name}", f"{self.prefix}.{len(self.hosts) + 2}")
        outside, inside = f"bgmh{self.tag}{name}", f"bgmh{self.tag}{name}p"
        _ip("netns", "add", host.netns)
        self.hosts.append(host)
        _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
        self._veths.append(outside)
        _ip("link", "set", inside, "netns", host.netns)
        _ip("link", "set", outside, "master", self.bridge)
        _ip("link", "set", outside, "up")
        for args in (
            ("link", "set", "lo", "up"),
            ("addr", "add", f"{host.address}/24", "dev", inside),
            ("link", "set", inside, "up"),
        ):
            _ip("netns", "exec", host.netns, "ip", *args)
        return host

    def kill_host(self, host: Host) -> int:
        """kill -9 of every process in the host's namespace (all of them are ours)."""
        processes = []
        for pid in netns_pids(host.netns):
            with contextlib.suppress(psutil.NoSuchProcess):
                processes.append(psutil.Process(pid))
        kill_all(processes)
        psutil.wait_procs(processes, timeout=10)
        return len(processes)

    def close(self) -> None:
        for host in self.hosts:
            self.kill_host(host)
            with contextlib.suppress(subprocess.CalledProcessError):
                _ip("netns", "del", host.netns)
        for veth in self._veths:  # gone with their namespace's end, normally
            with contextlib.suppress(subprocess.CalledProcessError):
                _ip("link", "del", veth)
        with contextlib.suppress(subprocess.CalledProcessError):
            _ip("link", "del", self.bridge)


def _gql(client: httpx.Client, token: str, query: str, **variables: Any) -> dict[str, Any]:
    body = client.post(
        "/graphql",
        json={"query": query, "variables": variables},
        headers={"authorization": f"Bearer {token}"},
    ).json()
    if "errors" in body:
        raise RuntimeError(body["errors"])
    return body["data"]  # type: ignore[no-any-return]


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM cleans up like Ctrl-C


def run(jobs: int, broker_kind: str, kill_at: float, limit: float, logs: Path) -> int:
    net = Network()
    services: list[Any] = []
    processes: list[Fleet | subprocess.Popen[bytes]] = []
    try:
        a, b, c = net.add("a"), net.add("b"), net.add("c")
        pg = PrivatePostgres(host=a.address, netns=a.netns, clients=f"{net.prefix}.0/24")
        services.append(pg)
        pg.start()
        database_url = pg.create_database("batchgraph")
        broker: PrivateRabbitMQ | PrivateRedis
        if broker_kind == "rabbitmq":
            broker = PrivateRabbitMQ(host=a.address, netns=a.netns)
        else:
            broker = PrivateRedis(host=a.address, netns=a.netns)
        services.append(broker)
        broker.start()
        env = worker_env(database_url, broker.url)
        if broker_kind == "rabbitmq":
            env.pop("dramatiq_worker_timeout")  # RabbitMQ pushes; no polling to shorten
        print(
            f"multihost: {jobs} builtin.echo jobs; bridge {net.bridge} {net.prefix}.0/24\n"
            f"  host A {a.address}: PostgreSQL :{pg.port}, {broker_kind} :{broker.port}\n"
            f"  host B {b.address}: batchgraph serve --no-worker :{API_PORT}\n"
            f"  host C {c.address}: batchgraph worker --processes 2 --threads 4",
            flush=True,
        )
        serve_log = logs / "serve-b.log"
        with serve_log.open("wb") as out:
            api = subprocess.Popen(
                [
                    "ip",
                    "netns",
                    "exec",
                    b.netns,
                    sys.executable,
                    "-m",
                    CLI_MODULE,
                    "serve",
                    "--no-worker",
                    "--host",
                    b.address,
                    "--port",
                    str(API_PORT),
                ],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=REPO,
            )
        processes.append(api)
        base = f"http://{b.address}:{API_PORT}"
        wait_until(
            lambda: httpx.get(f"{base}/readyz", timeout=2).status_code == 200,
            90,
            "the API on host B",
            step=0.3,
        )
        token = next(w for w in serve_log.read_text().split() if w.startswith("bg_"))
        processes.append(Fleet(env, logs / "worker-c.log", processes=2, threads=4, netns=c.netns))
        with httpx.Client(base_url=base, timeout=120) as client:

            def two_workers() -> bool:
                found = _gql(client, token, "{ workers(connected: true) { totalCount } }")
                return int(found["workers"]["totalCount"]) >= 2

            wait_until(two_workers, 90, "host C's two worker processes", step=0.3)
            _gql(
                client,
                token,
                """mutation { createTaskType(input: {name: "echo",
                implementation: "builtin.echo", maxAttempts: 3}) { __typename } }""",
            )
            definition = {
                "recipe": {"nodes": [{"name": "n", "taskType": "echo"}]},
                "inputs": [{"i": i} for i in range(jobs)],
            }
            started = time.monotonic()
            batch_gid = _gql(
                client,
                token,
                """mutation($d: JSON!) { createBatch(input: {title: "multihost",
                definition: $d}) { ... on BatchCreated { batch { id } } } }""",
                d=definition,
            )["createBatch"]["batch"]["id"]
            created_in = time.monotonic() - started
            print(f"  +{created_in:5.1f} s  batch created over the API from the root namespace")
            killed_at = done_at_kill = None
            while True:
                elapsed = time.monotonic() - started
                if elapsed > limit:
                    print(f"TIMED OUT after {limit:.0f} s", flush=True)
                    return 2
                counters = _gql(
                    client,
                    token,
                    "query($id: ID!) { batch(id: $id) { counters { completed failed } } }",
                    id=batch_gid,
                )["batch"]["counters"]
                done = int(counters["completed"]) + int(counters["failed"])
                if done >= jobs:
                    break
                if killed_at is None and counters["completed"] >= kill_at * jobs:
                    killed_at, done_at_kill = elapsed, int(counters["completed"])
                    n = net.kill_host(c)
                    d = net.add("d")
                    processes.append(
                        Fleet(env, logs / "worker-d.log", processes=2, threads=4, netns=d.netns)
                    )
                    print(
                        f"  +{elapsed:5.1f} s  [{done_at_kill}/{jobs} completed]  host C killed"
                        f" (kill -9 of its {n} processes); a replacement worker starts on"
                        f" host D {d.address}",
                        flush=True,
                    )
                time.sleep(0.2)
            total = time.monotonic() - started
        print(f"  +{total:5.1f} s  every job ended", flush=True)

        report = chaos.Report(jobs=jobs, seconds=total)
        batch_id = int(base64.b64decode(batch_gid).decode().split(":")[1])
        asyncio.run(_verify(database_url, batch_id, report))
        if killed_at is not None and done_at_kill is not None:
            # Jobs RUNNING on host C when it died wait for its worker timeout (then run as a
            # new attempt); messages it had fetched wait for the broker to redeliver them
            # (RabbitMQ: when the connection drops; Redis: after Dramatiq's heartbeat
            # timeout) or for the re-send of QUEUED jobs nobody picked up.
            after = total - killed_at
            print(
                f"throughput: host C {done_at_kill / killed_at:.0f} jobs/s until the kill;"
                f" {(jobs - done_at_kill) / after:.0f} jobs/s from the kill to the end"
                f" ({jobs - done_at_kill} jobs in {after:.1f} s, host D and what host C held);"
                f" {jobs / total:.0f} jobs/s end to end ({jobs} jobs in {total:.1f} s)"
            )
        else:
            print(f"throughput: {jobs / total:.0f} jobs/s end to end (ended before the kill)")
        print(chaos.summary(report).split("\n", 1)[1])
        if killed_at is None:
            print("VIOLATION: host C was not killed mid-batch")
            return 1
        return 1 if report.violations else 0
    finally:
        for process in reversed(processes):
            if isinstance(process, Fleet):
                process.stop(timeout=20)
            elif process.poll() is None:
                process.send_signal(signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(30)
        for service in reversed(services):
            with contextlib.suppress(Exception):
                service.close()
        net.close()


async def _verify(database_url: str, batch_id: int, report: chaos.Report) -> None:
    from db.session import connect

    db = connect(database_url, pool_size=1, max_overflow=0)
    try:
        await chaos.verify(db, batch_id, report)
    finally:
        await db.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--broker", choices=("rabbitmq", "redis"), default="rabbitmq")
    parser.add_argument("--kill-at", type=float, default=0.4, help="fraction completed")
    parser.add_argument("--limit", type=float, default=900, help="give up after (s)")
    parser.add_argument("--logs", type=Path, help="keep the processes' logs in this folder")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("bench/multihost.py needs root (ip netns)", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _interrupt)
    logs = args.logs or Path(tempfile.mkdtemp(prefix="bg-multihost-"))
    logs.mkdir(parents=True, exist_ok=True)
    print(f"logs in {logs}", flush=True)
    try:
        code = run(args.jobs, args.broker, args.kill_at, args.limit, logs)
        if code == 0 and args.logs is None:
            shutil.rmtree(logs, ignore_errors=True)  # kept only when something went wrong
        return code
    except KeyboardInterrupt:
        print("interrupted; everything it started was stopped and removed", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
