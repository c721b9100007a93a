"""Partial uploads, staged on this machine's disk until their digest is checked.

Both backends stage here (debusine kept partial uploads in an upload folder too): a
store only ever receives whole, verified files. One writer per file at a time (an
``flock`` on the staged file, across processes); the running sha256 of what was
written stays in memory, so a file uploaded in order is hashed once, as it arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
from collections.abc import AsyncIterable
from pathlib import Path
from typing import Any

from db.errors import StoreBusyError

BUFFER_BYTES = 1 << 20  # written to disk (and hashed) a MiB at a time
READ_BYTES = 1 << 20


def shard(sha256: str) -> str:
    """The hash layout: ``ab/cdef…``."""
    return f"{sha256[:2]}/{sha256[2:]}"


class Staging:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        # sha256 → (bytes hashed, running hash of them)
        self._hashers: dict[str, tuple[int, Any]] = {}

    def path(self, sha256: str) -> Path:
        return self.folder / f"{sha256}.part"

    async def received(self, sha256: str) -> int:
        try:
            return (await asyncio.to_thread(os.stat, self.path(sha256))).st_size
        except FileNotFoundError:
            return 0

    async def receive(
        self, sha256: str, offset: int, chunks: AsyncIterable[bytes], length: int
    ) -> bool:
        path = self.path(sha256)
        await asyncio.to_thread(self.folder.mkdir, parents=True, exist_ok=True)
        handle = await asyncio.to_thread(_open_locked, path)
        try:
            hashed = self._hashers.pop(sha256, None)
            hasher = hashed[1] if hashed is not None and hashed[0] == offset else None
            if hasher is None and offset == 0:
                hasher = hashlib.sha256()
            await asyncio.to_thread(_truncate, handle, offset)
            written = 0
            buffer: list[bytes] = []
            buffered = 0
            try:
                async for chunk in chunks:
                    if written + buffered + len(chunk) > length:
                        await asyncio.to_thread(_truncate, handle, offset)
                        return False
                    buffer.append(chunk)
                    buffered += len(chunk)
                    if buffered >= BUFFER_BYTES:
                        await asyncio.to_thread(_write, handle, buffer, hasher)
                        written += buffered
                        buffer, buffered = [], 0
                if buffer:
                    await asyncio.to_thread(_write, handle, buffer, hasher)
                    written += buffered
            except BaseException:
                # The client went away mid-body: what arrived is kept (the probe tells the
                # client where to continue), and the running hash with it.
                if hasher is not None:
                    self._hashers[sha256] = (offset + written, hasher)
                raise
            if written != length:
                await asyncio.to_thread(_truncate, handle, offset)
                return False
            if hasher is not None:
                self._hashers[sha256] = (offset + written, hasher)
            return True
        finally:
            await asyncio.to_thread(_close, handle)

    async def digest(self, sha256: str) -> str:
        size = await self.received(sha256)
        hashed = self._hashers.get(sha256)
        if hashed is not None and hashed[0] == size:
            return str(hashed[1].copy().hexdigest())
        return await asyncio.to_thread(_hash_file, self.path(sha256))

    async def discard(self, sha256: str) -> None:
        self._hashers.pop(sha256, None)
        with contextlib.suppress(FileNotFoundError):
            await asyncio.to_thread(os.unlink, self.path(sha256))

    def forget(self, sha256: str) -> None:
        self._hashers.pop(sha256, None)


def _open_locked(path: Path) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StoreBusyError("another upload of this file is in progress") from None
    return fd


def _truncate(fd: int, size: int) -> None:
    os.ftruncate(fd, size)
    os.lseek(fd, size, os.SEEK_SET)


def _write(fd: int, buffer: list[bytes], hasher: Any) -> None:
    data = b"".join(buffer)
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    if hasher is not None:
        hasher.update(data)


def _close(fd: int) -> None:
    try:
        os.fsync(fd)
    finally:
        os.close(fd)  # releases the lock


def _hash_file(path: Path) -> str:
    hasher = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(READ_BYTES):
            hasher.update(block)
    return hasher.hexdigest()
