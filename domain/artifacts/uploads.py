"""Resumable uploads and ranged downloads of artifact files (debusine's protocol).

An upload is any number of ``PUT``s, each carrying ``Content-Range: bytes
START-END/SIZE``; ``bytes */SIZE`` is a probe answering how much arrived. Pieces must
continue where the received bytes end (an overlap is skipped, a gap refused); when the
last byte arrives the sha256 is checked: a mismatch discards the upload, a match moves
the bytes into the workspace's store and only then records them as stored. No database
session is held while bytes flow.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass

from db.errors import StoreBusyError
from db.models import Artifact
from db.repositories.artifact import FileEntry
from db.uow import UnitOfWork
from domain.artifacts import rules
from domain.artifacts.service import get_visible, may_write
from domain.auth.rules import Actor
from domain.errors import BadRequestError, ConflictError, NotFoundError
from domain.ports import FileStore, FileStores

Units = Callable[[], UnitOfWork]


class UploadRefused(BadRequestError):
    """A piece that does not fit; ``received`` says where to continue."""

    def __init__(self, message: str, received: int) -> None:
        super().__init__(message)
        self.received = received


class DigestMismatch(ConflictError):
    received = 0


class UploadBusy(ConflictError):
    """Another request writes this file now."""


@dataclass(frozen=True, slots=True)
class Target:
    artifact: Artifact
    entry: FileEntry
    store_id: int
    store: FileStore


@dataclass(frozen=True, slots=True)
class UploadState:
    path: str
    size: int
    received: int
    complete: bool
    completed_now: bool = False


async def _target(
    units: Units,
    stores: FileStores,
    *,
    artifact_id: int,
    path: str,
    actor: Actor | None,
    write: bool,
) -> Target:
    async with units() as uow:
        artifact = await get_visible(uow, artifact_id, actor)
        if write:
            await may_write(uow, artifact, actor)
        entry = await uow.artifacts.entry(artifact_id, path)
        if entry is None:
            raise NotFoundError(f"Artifact {artifact_id} has no file {path[:200]!r}")
        row = await uow.artifacts.store_of_workspace(artifact.workspace_id)
        if not write and entry.complete and entry.size > 0:
            holding = await uow.artifacts.stores_holding(entry.file_id)
            if holding and row.id not in {h.id for h in holding}:
                row = holding[0]  # stored before the workspace changed stores
        store = stores.open(row.id, row.backend.value, row.configuration)
        return Target(artifact, entry, row.id, store)


async def put(
    units: Units,
    stores: FileStores,
    *,
    artifact_id: int,
    path: str,
    content_range: str | None,
    content_length: int | None,
    body: AsyncIterable[bytes],
    actor: Actor | None,
) -> UploadState:
    """One upload request: a probe, or a piece of the file's bytes."""
    target = await _target(
        units, stores, artifact_id=artifact_id, path=path, actor=actor, write=True
    )
    entry, store = target.entry, target.store
    sha, size = entry.sha256, entry.size
    if entry.complete:  # uploaded before (by this artifact or another): nothing to do
        return UploadState(path, size, size, True)
    received = await store.received(sha)
    try:
        piece = rules.parse_content_range(content_range, declared_size=size)
    except rules.RangeError as exc:
        raise UploadRefused(f"{exc}; {_continue(received)}", received) from None
    if received >= size:  # all staged, not stored yet (an earlier commit failed): finish
        return await _finish(units, target)
    if piece.is_probe:
        return UploadState(path, size, received, False)
    assert piece.start is not None
    assert piece.end is not None
    if content_length is not None and content_length != piece.length:
        raise UploadRefused(
            f"the body has {content_length} bytes but the range {piece.start}-{piece.end}"
            f" holds {piece.length}; {_continue(received)}",
            received,
        )
    if piece.start > received:
        raise UploadRefused(
            f"a gap: the range starts at {piece.start}; {_continue(received)}", received
        )
    if piece.end < received:
        return UploadState(path, size, received, False)  # had it already
    length = piece.end + 1 - received
    try:
        kept = await store.receive(sha, received, _skip(body, received - piece.start), length)
    except StoreBusyError:
        raise UploadBusy(
            "another upload of this file is in progress; probe again shortly"
        ) from None
    if not kept:
        raise UploadRefused(
            f"the body did not hold the {piece.length} bytes of {piece.start}-{piece.end};"
            f" {_continue(received)}",
            received,
        )
    received = piece.end + 1
    if received < size:
        return UploadState(path, size, received, False)
    return await _finish(units, target)


async def _finish(units: Units, target: Target) -> UploadState:
    """Every byte is staged: check the digest, then store, then record."""
    entry, store = target.entry, target.store
    sha, size, path = entry.sha256, entry.size, entry.path
    if not await store.has(sha):  # else another upload of the same bytes stored them
        digest = await store.staged_digest(sha)
        if digest != sha:
            await store.discard(sha)
            raise DigestMismatch(
                f"the bytes' sha256 is {digest}, not the declared {sha}: the upload was"
                " discarded; upload the file again from byte 0"
            )
        try:
            await store.commit(sha)
        except FileNotFoundError:
            if not await store.has(sha):  # not a concurrent finish of the same bytes
                raise
    async with units() as uow:  # recorded only once the store holds the bytes
        await uow.artifacts.mark_stored(entry.file_id, target.store_id)
        await uow.commit()
    return UploadState(path, size, size, True, completed_now=True)


def _continue(received: int) -> str:
    return f"received {received} bytes: continue at byte {received}"


async def _skip(chunks: AsyncIterable[bytes], count: int) -> AsyncIterator[bytes]:
    """The body without its first ``count`` bytes (a resent overlap)."""
    async for chunk in chunks:
        if count >= len(chunk):
            count -= len(chunk)
            continue
        if count:
            chunk, count = chunk[count:], 0
        yield chunk


@dataclass(frozen=True, slots=True)
class Download:
    entry: FileEntry
    store: FileStore
    span: tuple[int, int]  # [start, stop)
    partial: bool


async def get(
    units: Units,
    stores: FileStores,
    *,
    artifact_id: int,
    path: str,
    range_header: str | None,
    actor: Actor | None,
) -> Download:
    """What a download streams: NotFound if hidden or missing, Conflict if not uploaded
    yet, rules.RangeError for an unsatisfiable range."""
    target = await _target(
        units, stores, artifact_id=artifact_id, path=path, actor=actor, write=False
    )
    entry = target.entry
    if not entry.complete:
        raise ConflictError(f"{path[:200]!r} is not uploaded yet")
    span = rules.parse_range(range_header, entry.size)
    if span is None:
        return Download(entry, target.store, (0, entry.size), False)
    return Download(entry, target.store, span, True)
