"""Both store backends pass the same tests: a local folder and a real S3-compatible
server (moto's, over HTTP on 127.0.0.1) — never a mock of the client."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from db.errors import StoreBusyError
from db.filestores.factory import Store, Stores


@pytest.fixture(params=["LOCAL", "S3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    stores = Stores(tmp_path / "files")
    if request.param == "LOCAL":
        return stores.open(1, "LOCAL", {})
    configuration = request.getfixturevalue("s3_server")
    return stores.open(2, "S3", {**configuration, "prefix": f"t-{tmp_path.name}"})


async def body(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def collect(chunks: AsyncIterator[bytes]) -> bytes:
    return b"".join([c async for c in chunks])


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def test_staged_in_pieces_then_committed_and_read_by_range(
    store: Store, tmp_path: Path
) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    key = sha(data)
    assert not await store.has(key)
    assert await store.received(key) == 0
    half = len(data) // 2
    assert await store.receive(key, 0, body(data[:1000], data[1000:half]), half)
    assert await store.received(key) == half
    assert await store.receive(key, half, body(data[half:]), len(data) - half)
    assert await store.received(key) == len(data)
    assert await store.staged_digest(key) == key
    await store.commit(key)
    assert await store.has(key)
    assert await store.received(key) == 0  # nothing staged any more
    assert await collect(store.read(key, 0, len(data))) == data
    assert await collect(store.read(key, 5, 1_500_000)) == data[5:1_500_000]
    assert await collect(store.read(key, len(data) - 1, len(data))) == data[-1:]
    path = await store.local_path(key, tmp_path / "scratch")
    assert path.read_bytes() == data
    await store.delete(key)
    assert not await store.has(key)


async def test_a_body_of_the_wrong_length_keeps_nothing(store: Store) -> None:
    data = b"0123456789" * 100
    key = sha(data)
    assert await store.receive(key, 0, body(data[:100]), 100)
    assert not await store.receive(key, 100, body(data[100:150]), 100)  # short
    assert await store.received(key) == 100
    assert not await store.receive(key, 100, body(data[100:250]), 100)  # long
    assert await store.received(key) == 100
    assert await store.receive(key, 100, body(data[100:]), len(data) - 100)
    assert await store.staged_digest(key) == key


async def test_an_interrupted_body_keeps_what_arrived(store: Store, tmp_path: Path) -> None:
    data = os.urandom(2 * 1024 * 1024)
    key = sha(data)

    async def broken() -> AsyncIterator[bytes]:
        yield data[: 1024 * 1024 + 5]
        raise ConnectionResetError("the client went away")

    with pytest.raises(ConnectionResetError):
        await store.receive(key, 0, broken(), len(data))
    got = await store.received(key)
    assert got == 1024 * 1024 + 5
    assert await store.receive(key, got, body(data[got:]), len(data) - got)
    assert await store.staged_digest(key) == key
    # Without the running hash (another process, a restart) the digest is read from disk.
    store.staging.forget(key)
    assert await store.staged_digest(key) == key


async def test_one_writer_per_file_at_a_time(store: Store) -> None:
    data = b"x" * 1000
    key = sha(data)
    gate = asyncio.Event()

    async def slow() -> AsyncIterator[bytes]:
        yield data[:10]
        await gate.wait()
        yield data[10:]

    first = asyncio.create_task(store.receive(key, 0, slow(), len(data)))
    await asyncio.sleep(0.05)
    with pytest.raises(StoreBusyError):
        await store.receive(key, 0, body(data), len(data))
    gate.set()
    assert await first


async def test_written_once_and_discard(store: Store, tmp_path: Path) -> None:
    data = b"hello, world\n"
    key = sha(data)
    source = tmp_path / "source.txt"
    source.write_bytes(data)
    await store.put_file(key, source)
    await store.put_file(key, source)  # again: a no-op
    assert await collect(store.read(key, 0, len(data))) == data
    assert source.read_bytes() == data  # the caller's file is left alone
    other = b"partial"
    assert await store.receive(sha(other), 0, body(other), len(other))
    await store.discard(sha(other))
    assert await store.received(sha(other)) == 0
    assert not await store.has(sha(other))
