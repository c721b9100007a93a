"""Artifacts: 1 GiB through the HTTP endpoints vs `cp`, lineage of a 10,000-artifact
graph, createArtifact with 10,000 files.

Starts embedded PostgreSQL and Redis in a temporary folder (unless DATABASE_URL /
BROKER_URL are set) and a real `batchgraph serve --no-worker`, whose files go to the
same temporary folder (one disk for every copy). Everything it writes is removed at the
end.

* upload and download of a SIZE file (default 1 GiB) with the command line's client
  (`launcher.transfer`: 64 MiB pieces, a MiB per read), against `cp` of the same file
  on the same disk followed by an fsync (the server fsyncs what it stores); rounds
  alternate cp / upload / download; the server's resident memory is sampled every
  20 ms (peak minus idle);
* lineage: 10,000 artifacts in 5 levels (1, 9, 90, 900, 9,000), each linked
  BUILT_USING to a parent of the level above and to a second one (a DAG with shared
  ancestry); DOWNSTREAM from the root (the whole graph, first 500 returned) and
  UPSTREAM from a leaf, depth 5: statements and time of the repository's query, and the
  GraphQL request end to end;
* createArtifact with 100 and 10,000 files through the domain (statements, time) and
  over HTTP (time).

    .venv/bin/python bench/artifacts.py [--size-mib 1024] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import http.client
import itertools
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from harness import free_port
from sqlalchemy import event, text

from db.config import load_settings
from db.enums import RelationType, TokenRole
from db.filestores.staging import preallocate
from db.repositories.artifact import ArtifactRepository
from db.session import connect
from db.uow import UnitOfWork
from domain.artifacts import service
from domain.artifacts.rules import FileSpec
from domain.auth.rules import Actor
from launcher import transfer
from launcher.runtime import infrastructure, migrate

ADMIN = Actor(token_id=0, owner="bench", role=TokenRole.ADMIN)
MIB = 1 << 20


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Peak:
    """The peak resident memory of a process while the block runs (sampled every 20 ms)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self._stop = threading.Event()

    def __enter__(self) -> Peak:
        self.peak = rss_kib(self.pid)
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss_kib(self.pid))

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def gql(
    client: httpx.Client, token: str, query: str, variables: dict[str, Any] | None = None
) -> Any:
    body = client.post(
        "/graphql",
        json={"query": query, "variables": variables or {}},
        headers={"authorization": f"Bearer {token}"},
    ).json()
    if "errors" in body:
        raise RuntimeError(body["errors"])
    return body["data"]


CREATE = """mutation($input: CreateArtifactInput!) { createArtifact(input: $input) { __typename
  ... on ArtifactCreated { pathsToUpload artifact { id } } ... on Error { code message } } }"""


def random_file(path: Path, size: int) -> tuple[str, int]:
    hasher = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left:
            block = os.urandom(min(8 * MIB, left))
            hasher.update(block)
            f.write(block)
            left -= len(block)
    return hasher.hexdigest(), size


def cp(source: Path, target: Path) -> float:
    started = time.perf_counter()
    subprocess.run(["cp", str(source), str(target)], check=True)
    with open(target, "rb") as f:
        os.fsync(f.fileno())
    return time.perf_counter() - started


def get(url: str, token: str, target: Path) -> float:
    parts = url.split("/", 3)
    host, port = parts[2].split(":")
    started = time.perf_counter()
    conn = http.client.HTTPConnection(host, int(port), timeout=600, blocksize=MIB)
    conn.request("GET", "/" + parts[3], headers={"authorization": f"Bearer {token}"})
    response = conn.getresponse()
    assert response.status == 200, response.status
    with open(target, "wb") as f:
        preallocate(f.fileno(), 0, int(response.getheader("content-length") or 0))
        while block := response.read(MIB):
            f.write(block)
        os.fsync(f.fileno())
    conn.close()
    return time.perf_counter() - started


def transfers(
    client: httpx.Client, base: str, token: str, pid: int, work: Path, size: int, rounds: int
) -> None:
    print(f"upload and download of {size / MIB:,.0f} MiB (loopback, one disk, {rounds} rounds)")
    # Warm up the code paths, then the idle resident memory.
    warm = work / "warm"
    sha, n = random_file(warm, MIB)
    made = gql(
        client,
        token,
        CREATE,
        {
            "input": {
                "workspace": "default",
                "category": "bench",
                "files": [{"path": "warm", "size": n, "sha256": sha}],
            }
        },
    )["createArtifact"]
    url = f"{base}/artifacts/{_db_id(made['artifact']['id'])}/files/warm"
    transfer.upload(url, token, warm, n, lambda _: None)
    get(url, token, work / "warm.back")
    time.sleep(1)
    idle = rss_kib(pid)
    print(f"  server idle RSS: {idle / 1024:,.1f} MiB")
    rows = []
    for r in range(rounds):
        source = work / f"source-{r}"
        sha, n = random_file(source, size)
        copy = cp(source, work / "copy")
        os.unlink(work / "copy")
        made = gql(
            client,
            token,
            CREATE,
            {
                "input": {
                    "workspace": "default",
                    "category": "bench",
                    "files": [{"path": "big.bin", "size": n, "sha256": sha}],
                }
            },
        )["createArtifact"]
        url = f"{base}/artifacts/{_db_id(made['artifact']['id'])}/files/big.bin"
        with Peak(pid) as up_peak:
            started = time.perf_counter()
            transfer.upload(url, token, source, n, lambda _: None)
            up = time.perf_counter() - started
        with Peak(pid) as down_peak:
            down = get(url, token, work / "back")
        assert transfer.digest(work / "back")[0] == sha
        os.unlink(work / "back")
        os.unlink(source)
        rows.append((copy, up, down, up_peak.peak - idle, down_peak.peak - idle))
        print(
            f"  round {r + 1}: cp+fsync {copy:5.2f} s"
            f" | upload {up:5.2f} s ({n / MIB / up:,.0f} MiB/s,"
            f" {copy / up:.2f}x cp), peak RSS +{(up_peak.peak - idle) / 1024:,.1f} MiB"
            f" | download {down:5.2f} s ({n / MIB / down:,.0f} MiB/s, {copy / down:.2f}x cp),"
            f" peak RSS +{(down_peak.peak - idle) / 1024:,.1f} MiB"
        )
    copy, up, down = (statistics.median(r[i] for r in rows) for i in range(3))
    print(
        f"  median: cp+fsync {copy:.2f} s, upload {up:.2f} s = {copy / up:.2f}x cp,"
        f" download {down:.2f} s = {copy / down:.2f}x cp; peak RSS above idle:"
        f" upload {max(r[3] for r in rows) / 1024:,.1f} MiB,"
        f" download {max(r[4] for r in rows) / 1024:,.1f} MiB"
    )


def _db_id(global_id: str) -> int:
    import base64

    return int(base64.b64decode(global_id).decode().split(":")[1])


LEVELS = (1, 9, 90, 900, 9_000)


async def lineage(url: str, client: httpx.Client, token: str) -> None:
    db = connect(url, pool_size=2, max_overflow=0)
    statements: list[str] = []
    event.listen(db.engine.sync_engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    rng = random.Random(7)
    async with db.engine.begin() as conn:
        ws = await conn.scalar(text("SELECT id FROM workspace WHERE name = 'default'"))
        levels: list[list[int]] = []
        for count in LEVELS:
            ids = list(
                await conn.scalars(
                    text(
                        "INSERT INTO artifact (workspace_id, category, data, created_by)"
                        " SELECT :ws, 'lineage', '{}', 'bench' FROM generate_series(1, :n)"
                        " RETURNING id"
                    ),
                    {"ws": ws, "n": count},
                )
            )
            levels.append(ids)
        sources, targets = [], []
        for above, here in itertools.pairwise(levels):
            for node in here:
                parents = {rng.choice(above), rng.choice(above)}
                for p in parents:
                    sources.append(node)
                    targets.append(p)
        await conn.execute(
            text(
                "INSERT INTO artifact_relation (source_id, target_id, type)"
                " SELECT s, t, 'BUILT_USING' FROM unnest(CAST(:s AS bigint[]),"
                " CAST(:t AS bigint[])) AS u(s, t)"
            ),
            {"s": sources, "t": targets},
        )
    total = sum(LEVELS)
    print(f"lineage: {total:,} artifacts in {len(LEVELS)} levels, {len(sources):,} relations")
    for label, start, upstream in (
        ("DOWNSTREAM from the root (the whole graph)", levels[0][0], False),
        ("UPSTREAM from a leaf", levels[-1][0], True),
    ):
        times = []
        for _ in range(21):
            async with db.read_session() as s:
                statements.clear()
                started = time.perf_counter()
                found = await ArtifactRepository(s).lineage(
                    start,
                    upstream=upstream,
                    downstream=not upstream,
                    depth=5,
                    types=list(RelationType),
                    cap=500,
                    edge_cap=2000,
                    private=True,
                )
                times.append(time.perf_counter() - started)
                count = len(statements)
        print(
            f"  {label}: {count} statement, median {statistics.median(times[1:]) * 1000:.1f} ms,"
            f" max {max(times[1:]) * 1000:.1f} ms; {len(found.nodes)} nodes returned"
            f" (truncated: {found.truncated}), {len(found.edges)} edges"
        )
        gid = __import__("base64").b64encode(f"Artifact:{start}".encode()).decode()
        query = """query($id: ID!, $d: LineageDirection!) { artifact(id: $id) {
          lineage(direction: $d, depth: 5, first: 500) { isTruncated
            nodes { depth artifact { id category } } edges { type source target } } } }"""
        http_times = []
        for _ in range(11):
            started = time.perf_counter()
            gql(client, token, query, {"id": gid, "d": "UPSTREAM" if upstream else "DOWNSTREAM"})
            http_times.append(time.perf_counter() - started)
        median = statistics.median(http_times[1:]) * 1000
        print(f"    the GraphQL request end to end: median {median:.1f} ms")
    await db.dispose()


async def creation(url: str, client: httpx.Client, token: str) -> None:
    db = connect(url, pool_size=2, max_overflow=0)
    statements: list[str] = []
    event.listen(db.engine.sync_engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    print("createArtifact")
    for n in (100, 10_000):
        files = [
            FileSpec(
                f"dir{i // 100:03d}/file{i:05d}.txt",
                i + 1,
                hashlib.sha256(f"{n}-{i}".encode()).hexdigest(),
            )
            for i in range(n)
        ]
        times = []
        for _ in range(3):
            statements.clear()
            started = time.perf_counter()
            async with UnitOfWork(db.write_session) as uow:
                created = await service.create_artifact(
                    uow,
                    spec=service.ArtifactSpec(workspace="default", category="many", files=files),
                    actor=ADMIN,
                )
                await uow.commit()
            times.append(time.perf_counter() - started)
            assert len(created.paths_to_upload) == n
        print(
            f"  {n:6,} files, domain call: {len(statements)} statements (commit included),"
            f" median {statistics.median(times) * 1000:.0f} ms"
        )
        body = {
            "input": {
                "workspace": "default",
                "category": "many-http",
                "files": [{"path": f.path, "size": f.size, "sha256": f.sha256} for f in files],
            }
        }
        started = time.perf_counter()
        found = gql(client, token, CREATE, body)["createArtifact"]
        assert len(found["pathsToUpload"]) == n
        print(
            f"  {n:6,} files, over HTTP (GraphQL, {len(str(body)) / 1e6:.1f} MB of JSON):"
            f" {(time.perf_counter() - started) * 1000:.0f} ms"
        )
    await db.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    print(
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; uptime: "
        + subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    )
    home = Path(tempfile.mkdtemp(prefix="bg-bench-artifacts-"))
    try:
        config = load_settings().model_copy(update={"home": home})
        with infrastructure(config) as infra:
            migrate(infra.database_url)
            port = free_port()
            env = {
                **os.environ,
                **infra.environment(),
                "BATCHGRAPH_PORT": str(port),
                "BATCHGRAPH_HOME": str(home),
                "BATCHGRAPH_FILES_DIR": str(home / "files"),
                "BATCHGRAPH_RATE_LIMIT_ENABLED": "false",
                "BATCHGRAPH_PERIODIC": "false",
            }
            log = home / "serve.log"
            with log.open("wb") as out:
                server = subprocess.Popen(
                    [sys.executable, "-m", "launcher", "serve", "--no-migrate", "--no-worker"],
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            base = f"http://127.0.0.1:{port}"
            try:
                with httpx.Client(base_url=base, timeout=600) as client:
                    deadline = time.monotonic() + 60
                    while True:
                        try:
                            if client.get("/readyz").status_code == 200:
                                break
                        except httpx.TransportError:
                            pass
                        if time.monotonic() > deadline or server.poll() is not None:
                            print(log.read_text(), file=sys.stderr)
                            return 1
                        time.sleep(0.2)
                    token = next(w for w in log.read_text().split() if w.startswith("bg_"))
                    work = home / "work"
                    work.mkdir()
                    transfers(
                        client, base, token, server.pid, work, args.size_mib * MIB, args.rounds
                    )
                    asyncio.run(lineage(infra.database_url, client, token))
                    asyncio.run(creation(infra.database_url, client, token))
            finally:
                server.send_signal(2)
                try:
                    server.wait(30)
                except subprocess.TimeoutExpired:
                    server.kill()
    finally:
        shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
