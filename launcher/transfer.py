"""File transfers of the command line: resumable uploads and downloads over HTTP.

Plain http.client, streaming a MiB at a time from and to disk. An
upload first asks the server how much of the file it holds (``Content-Range: bytes
*/SIZE``), then sends the rest in pieces; when a piece fails (the connection dropped,
the server restarted) it asks again and continues where the server says, so an
interrupted upload never starts over.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from db.filestores.staging import preallocate

BLOCK = 1 << 20
PIECE = 64 << 20  # one PUT: a failure costs at most this much
RETRIES = 8
TIMEOUT = 120

Progress = Callable[[int], None]  # called with the bytes now known to be on the server


class TransferError(Exception):
    """The server refused, or could not be reached; the message says which and why."""


def digest(path: Path) -> tuple[str, int]:
    hasher = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while block := f.read(BLOCK):
            hasher.update(block)
            size += len(block)
    return hasher.hexdigest(), size


class _Slice(io.RawIOBase):
    """Bytes [start, stop) of a file, read a block at a time, reporting progress."""

    def __init__(self, path: Path, start: int, stop: int, progress: Progress) -> None:
        self._file = open(path, "rb")  # noqa: SIM115 - closed with the slice
        self._file.seek(start)
        self._position = start
        self._stop = stop
        self._progress = progress

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        left = self._stop - self._position
        if left <= 0:
            return b""
        block = self._file.read(min(left, BLOCK if size is None or size < 0 else size))
        self._position += len(block)
        self._progress(self._position)
        return block

    def close(self) -> None:
        self._file.close()
        super().close()


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str]


def _connection(url: str) -> tuple[http.client.HTTPConnection, str]:
    parts = urlsplit(url)
    cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = cls(parts.hostname or "127.0.0.1", parts.port, timeout=TIMEOUT, blocksize=BLOCK)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    return conn, path


def _headers(token: str | None, **extra: str) -> dict[str, str]:
    return {**({"authorization": f"Bearer {token}"} if token else {}), **extra}


def _request(
    url: str, method: str, headers: dict[str, str], body: Any = None
) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    conn, path = _connection(url)
    conn.request(method, path, body=body, headers=headers)
    return conn, conn.getresponse()


def _answer(response: http.client.HTTPResponse) -> Answer:
    raw = response.read()
    try:
        body = json.loads(raw) if raw else {}
    except ValueError:
        body = {}
    return Answer(response.status, body, {k.lower(): v for k, v in response.getheaders()})


def _refusal(answer: Answer) -> str:
    errors = answer.body.get("errors") or [{}]
    code = (errors[0].get("extensions") or {}).get("code", answer.status)
    return f"{code}: {errors[0].get('message', 'HTTP ' + str(answer.status))}"


def probe(url: str, token: str | None, size: int) -> int:
    """How many bytes of the file the server holds (``size`` when it is complete)."""
    conn, response = _request(
        url, "PUT", _headers(token, **{"content-range": f"bytes */{size}", "content-length": "0"})
    )
    try:
        answer = _answer(response)
    finally:
        conn.close()
    if answer.status not in (200, 201):
        raise TransferError(_refusal(answer))
    return int(answer.body.get("received", 0))


def upload(
    url: str,
    token: str | None,
    path: Path,
    size: int,
    progress: Progress,
    *,
    piece: int = PIECE,
    on_resume: Callable[[int], None] | None = None,
) -> None:
    """Send the bytes the server lacks, in pieces; after a failure, probe and go on."""
    failures = 0
    received = probe(url, token, size)
    if received and on_resume is not None:
        on_resume(received)
    progress(received)
    while received < size:
        stop = min(size, received + piece)
        body = _Slice(path, received, stop, progress)
        headers = _headers(
            token,
            **{
                "content-range": f"bytes {received}-{stop - 1}/{size}",
                "content-length": str(stop - received),
                "content-type": "application/octet-stream",
            },
        )
        try:
            conn, response = _request(url, "PUT", headers, body)
            try:
                answer = _answer(response)
            finally:
                conn.close()
        except (OSError, http.client.HTTPException) as exc:
            answer = Answer(0, {"errors": [{"message": str(exc)}]}, {})
        finally:
            body.close()
        if answer.status in (200, 201):
            received = int(answer.body.get("received", stop))
            failures = 0
            progress(received)
            continue
        if answer.status == 400 and "received" in json.dumps(answer.body):
            pass  # out of step with the server: the probe below says where to continue
        elif answer.status and answer.status not in (409, 429, 500, 502, 503, 504):
            raise TransferError(_refusal(answer))
        failures += 1
        if failures > RETRIES:
            raise TransferError(f"gave up after {RETRIES} failures: {_refusal(answer)}")
        time.sleep(min(0.2 * 2**failures, 5))
        received = probe(url, token, size)
        if on_resume is not None:
            on_resume(received)
        progress(received)


def download(
    url: str,
    token: str | None,
    target: Path,
    size: int,
    sha256: str,
    progress: Progress,
) -> bool:
    """Fetch into ``target``, continuing a partial file with a Range request; the sha256
    is checked at the end. False when the file was there already."""
    have = target.stat().st_size if target.exists() else 0
    if have == size and digest(target)[0] == sha256:
        progress(size)
        return False
    if have > size:
        have = 0
    target.parent.mkdir(parents=True, exist_ok=True)
    failures = 0
    while True:
        headers = _headers(token, **({"range": f"bytes={have}-"} if 0 < have < size else {}))
        try:
            conn, response = _request(url, "GET", headers)
            try:
                if response.status not in (200, 206):
                    raise TransferError(_refusal(_answer(response)))
                if response.status == 200:
                    have = 0
                with open(target, "r+b" if have else "wb") as f:
                    f.seek(have)
                    f.truncate()
                    preallocate(f.fileno(), have, size - have)
                    while block := response.read(BLOCK):
                        f.write(block)
                        have += len(block)
                        progress(have)
            finally:
                conn.close()
        except (OSError, http.client.HTTPException):
            failures += 1
            if failures > RETRIES:
                raise
            time.sleep(min(0.2 * 2**failures, 5))
            continue
        break
    found, found_size = digest(target)
    if (found, found_size) != (sha256, size):
        os.unlink(target)
        raise TransferError(f"{target}: the downloaded bytes do not match the file's sha256")
    return True
