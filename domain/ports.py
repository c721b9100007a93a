"""Ports the domain needs from the outside world; entry points wire real adapters in."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Mapping
from pathlib import Path
from typing import Any, Protocol

JSONScalar = str | int | float | bool | None


class Dispatcher(Protocol):
    """Sends background work. Messages carry ids only; actor names are a wire contract."""

    async def send(
        self, actor_name: str, *args: JSONScalar, delay_ms: int | None = None
    ) -> None: ...

    async def ping(self) -> None:
        """Raise if the broker cannot be reached."""


class FileStore(Protocol):
    """Where file bytes live, by their sha256 (content-addressed, written once).

    Uploads arrive in pieces: they are staged (``received``/``receive``), checked by
    their digest, then ``commit``ted into the store in one atomic step, so a store
    never holds a partial or wrong file. Adapters live outside the domain
    (db/filestores: a local folder, an S3-compatible bucket); entry points pass a
    ``FileStores`` that opens them.
    """

    async def has(self, sha256: str) -> bool:
        """The store holds these bytes in full."""
        ...

    async def received(self, sha256: str) -> int:
        """Bytes of a partial upload staged so far (0: none)."""
        ...

    async def receive(
        self, sha256: str, offset: int, chunks: AsyncIterable[bytes], length: int
    ) -> bool:
        """Stage exactly ``length`` bytes at ``offset`` (the bytes received so far). False
        (and nothing of this body kept) when the body held fewer or more bytes.
        Raises db.errors.StoreBusyError while another request writes the same file."""
        ...

    async def staged_digest(self, sha256: str) -> str:
        """The sha256 (hex) of what is staged."""
        ...

    async def commit(self, sha256: str) -> None:
        """Move the staged bytes into the store, atomically; written once."""
        ...

    async def discard(self, sha256: str) -> None:
        """Forget a partial upload."""
        ...

    async def put_file(self, sha256: str, path: Path) -> None:
        """Store a whole local file (its digest checked by the caller)."""
        ...

    def read(self, sha256: str, start: int, stop: int) -> AsyncIterator[bytes]:
        """Bytes [start, stop) in chunks of at most a few MiB."""
        ...

    async def local_path(self, sha256: str, scratch: Path) -> Path:
        """A local path holding the bytes: the store's own file when it is a folder,
        else a copy made in ``scratch``."""
        ...

    async def delete(self, sha256: str) -> None:
        """Remove the bytes (no error if absent)."""
        ...


class FileStores(Protocol):
    """Opens the store a ``file_store`` row describes."""

    def open(self, store_id: int, backend: str, configuration: Mapping[str, Any]) -> FileStore: ...
