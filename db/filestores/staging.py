"""Partial uploads, staged on this machine's disk until their digest is checked.

Both backends stage here (debusine kept partial uploads in an upload folder too): a
store only ever receives whole, verified files. One writer per file at a time (an
``flock`` on the staged file, across processes); the running sha256 of what was
written stays in memory, so a file uploaded in order is hashed once, as it arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import fcntl
import hashlib
import os
from collections.abc import AsyncIterable, Callable
from pathlib import Path
from typing import Any, cast

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
            await asyncio.to_thread(preallocate, handle, offset, length)
            written = 0  # bytes on disk (and hashed)
            taken = 0  # bytes received from the body
            buffer: list[bytes] = []
            buffered = 0
            # Double buffering: one buffer is written (and hashed) in a thread while the
            # next one fills from the network; at most two buffers are held.
            writing: asyncio.Future[int] | None = None

            async def settle() -> None:
                nonlocal writing, written
                if writing is not None:
                    done, writing = writing, None
                    written += await done

            try:
                async for chunk in chunks:
                    if taken + len(chunk) > length:
                        await settle()
                        await asyncio.to_thread(_truncate, handle, offset)
                        return False
                    buffer.append(chunk)
                    taken += len(chunk)
                    buffered += len(chunk)
                    if buffered >= BUFFER_BYTES:
                        await settle()  # the previous buffer is on disk
                        writing = asyncio.ensure_future(
                            asyncio.to_thread(_write, handle, buffer, hasher)
                        )
                        buffer, buffered = [], 0
                await settle()
                if buffer:
                    written += await asyncio.to_thread(_write, handle, buffer, hasher)
            except BaseException:
                # The client went away mid-body: what arrived is kept (the probe tells the
                # client where to continue), and the running hash with it.
                with contextlib.suppress(BaseException):
                    await settle()
                    if buffer:
                        written += await asyncio.to_thread(_write, handle, buffer, hasher)
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


def _fallocate() -> Callable[[int, int, int, int], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        function = libc.fallocate
    except (OSError, AttributeError):  # not Linux: no preallocation
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    function.restype = ctypes.c_int
    return cast(Callable[[int, int, int, int], int], function)


_FALLOCATE = _fallocate()
FALLOC_FL_KEEP_SIZE = 1


def preallocate(fd: int, offset: int, length: int) -> None:
    """Reserve the blocks [offset, offset + length) without changing the file's size
    (Linux ``fallocate`` with KEEP_SIZE): large writes then run at the disk's pace
    instead of allocating as they go (measured: 1 GiB in 0.2 s instead of 0.3–3.4 s on
    a shared VM). Best effort: a file system that cannot do it is left alone."""
    if _FALLOCATE is not None and length > 0:
        _FALLOCATE(fd, FALLOC_FL_KEEP_SIZE, offset, length)


def _truncate(fd: int, size: int) -> None:
    os.ftruncate(fd, size)
    os.lseek(fd, size, os.SEEK_SET)


def _write(fd: int, buffer: list[bytes], hasher: Any) -> int:
    """Write the chunks as they came (one writev, no joining copy), then hash them."""
    total = sum(len(chunk) for chunk in buffer)
    done = os.writev(fd, buffer) if buffer else 0
    if done < total:  # a short write: the rest, joined
        view = memoryview(b"".join(buffer))[done:]
        while view:
            view = view[os.write(fd, view) :]
    if hasher is not None:
        for chunk in buffer:
            hasher.update(chunk)
    return total


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
