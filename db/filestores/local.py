"""A folder laid out by hash (``ab/cdef…``), each file written once by an atomic link."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path

from db.filestores.staging import READ_BYTES, Staging, shard


class LocalStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        # On the same filesystem as the files: committing is a rename, not a copy.
        self.staging = Staging(root / ".uploads")

    def _path(self, sha256: str) -> Path:
        return self.root / shard(sha256)

    async def has(self, sha256: str) -> bool:
        return await asyncio.to_thread(self._path(sha256).is_file)

    async def received(self, sha256: str) -> int:
        return await self.staging.received(sha256)

    async def receive(
        self, sha256: str, offset: int, chunks: AsyncIterable[bytes], length: int
    ) -> bool:
        return await self.staging.receive(sha256, offset, chunks, length)

    async def staged_digest(self, sha256: str) -> str:
        return await self.staging.digest(sha256)

    async def commit(self, sha256: str) -> None:
        await asyncio.to_thread(self._place, self.staging.path(sha256), sha256)
        self.staging.forget(sha256)

    async def discard(self, sha256: str) -> None:
        await self.staging.discard(sha256)

    async def put_file(self, sha256: str, path: Path) -> None:
        def copy() -> None:
            self.staging.folder.mkdir(parents=True, exist_ok=True)
            scratch = self.staging.folder / f"put-{uuid.uuid4().hex}"
            try:
                shutil.copyfile(path, scratch)
                self._place(scratch, sha256)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    scratch.unlink()

        await asyncio.to_thread(copy)

    def _place(self, source: Path, sha256: str) -> None:
        """Link ``source`` at the file's place (an atomic step that never overwrites:
        a file is written once), then drop ``source``."""
        final = self._path(sha256)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(source, 0o444)
        try:
            with open(source, "rb") as f:
                os.fsync(f.fileno())
            os.link(source, final)
        except FileExistsError:
            pass  # the same bytes, placed by someone else first
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(source)

    async def read(self, sha256: str, start: int, stop: int) -> AsyncIterator[bytes]:
        f = await asyncio.to_thread(open, self._path(sha256), "rb")
        ahead: asyncio.Future[bytes] | None = None
        try:
            await asyncio.to_thread(f.seek, start)
            left = stop - start
            # Read-ahead: the next block is read in a thread while this one is sent.
            ahead = asyncio.ensure_future(asyncio.to_thread(f.read, min(READ_BYTES, left)))
            while left > 0 and ahead is not None:
                block = await ahead
                ahead = None
                if not block:
                    break
                left -= len(block)
                if left > 0:
                    ahead = asyncio.ensure_future(asyncio.to_thread(f.read, min(READ_BYTES, left)))
                yield block
        finally:
            if ahead is not None:
                with contextlib.suppress(BaseException):
                    await ahead
            await asyncio.to_thread(f.close)

    async def local_path(self, sha256: str, scratch: Path) -> Path:
        return self._path(sha256)

    async def delete(self, sha256: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            await asyncio.to_thread(os.unlink, self._path(sha256))
