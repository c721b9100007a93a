"""Artifact rules (debusine): paths, declared files, categories, expiry, byte ranges.

Pure: no I/O.
"""

from __future__ import annotations

import json
import mimetypes
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from domain.errors import Violation

MAX_FILES = 50_000
MAX_PATH = 1024
MAX_FILE_SIZE = 1 << 50  # 1 PiB
MAX_DATA_BYTES = 1 << 20
MAX_EXPIRY_SECONDS = 100 * 365 * 24 * 3600
MAX_DEPTH = 20
MAX_LINEAGE_NODES = 500
MAX_LINEAGE_EDGES = 2_000
MAX_RELATIONS = 100
CATEGORY_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_.:-]{0,99}$")
SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}$")
CONTENT_TYPE_PATTERN = re.compile(r"^[A-Za-z0-9!#$&^_.+-]{1,63}/[A-Za-z0-9!#$&^_.+-]{1,63}$")
DEFAULT_CONTENT_TYPE = "application/octet-stream"

JSON = Any


@dataclass(frozen=True, slots=True)
class FileSpec:
    path: str
    size: int
    sha256: str
    content_type: str | None = None

    def declared_type(self) -> str:
        """As declared, else guessed from the path's extension."""
        if self.content_type:
            return self.content_type
        guessed, _ = mimetypes.guess_type(self.path, strict=False)
        return guessed or DEFAULT_CONTENT_TYPE


def check_path(path: str, where: str) -> list[Violation]:
    """A relative path with '/' separators: no '..', no absolute path, no backslash, no NUL,
    no empty or '.' segment."""
    problems = []
    if not path or len(path) > MAX_PATH:
        problems.append(f"must be 1–{MAX_PATH} characters")
    if "\x00" in path:
        problems.append("must not contain NUL characters")
    if "\\" in path:
        problems.append("must use '/' as separator, not backslashes")
    if path.startswith("/"):
        problems.append("must be relative, not absolute")
    segments = path.split("/")
    if ".." in segments:
        problems.append("must not contain '..'")
    if path and any(s in ("", ".") for s in segments):
        problems.append("must not have empty or '.' segments")
    return [Violation(where, p) for p in problems]


def check_files(files: Sequence[FileSpec], base: str = "$.files") -> list[Violation]:
    if len(files) > MAX_FILES:
        return [Violation(base, f"{len(files)} files; at most {MAX_FILES} per artifact")]
    violations: list[Violation] = []
    seen: set[str] = set()
    for i, f in enumerate(files):
        where = f"{base}[{i}]"
        violations += check_path(f.path, f"{where}.path")
        if f.path in seen:
            violations.append(Violation(f"{where}.path", f"duplicate path {f.path[:200]!r}"))
        seen.add(f.path)
        if not 0 <= f.size <= MAX_FILE_SIZE:
            violations.append(Violation(f"{where}.size", f"must be between 0 and {MAX_FILE_SIZE}"))
        if not SHA256_PATTERN.match(f.sha256):
            violations.append(Violation(f"{where}.sha256", "must be 64 lower-case hex digits"))
        if f.content_type is not None and not CONTENT_TYPE_PATTERN.match(f.content_type):
            violations.append(
                Violation(f"{where}.contentType", "must be a media type such as text/plain")
            )
        if len(violations) >= 100:
            break
    return violations


def check_category(name: str, where: str = "$.category") -> list[Violation]:
    if CATEGORY_PATTERN.match(name):
        return []
    return [
        Violation(
            where,
            "must start with a letter and be at most 100 letters, digits, '_', '.', ':' or '-'",
        )
    ]


def check_data(data: JSON, where: str = "$.data") -> list[Violation]:
    if not isinstance(data, dict):
        return [Violation(where, "must be a JSON object")]
    if len(json.dumps(data)) > MAX_DATA_BYTES:
        return [Violation(where, f"must be at most {MAX_DATA_BYTES} bytes of JSON")]
    return []


def check_expiry(seconds: int | None, where: str) -> list[Violation]:
    if seconds is None or 0 <= seconds <= MAX_EXPIRY_SECONDS:
        return []
    return [Violation(where, f"must be between 0 (never) and {MAX_EXPIRY_SECONDS} seconds")]


def expire_at(created: datetime, *, own: int | None, workspace_default: int) -> datetime | None:
    """The artifact's own delay when given, else the workspace's; 0 means never."""
    delay = workspace_default if own is None else own
    return created + timedelta(seconds=delay) if delay > 0 else None


def is_expired(expires: datetime | None, now: datetime) -> bool:
    """Expired iff expireAt ≤ now."""
    return expires is not None and expires <= now


# --- byte ranges -----------------------------------------------------------------------


class RangeError(ValueError):
    """A Content-Range or Range header that cannot be used (the message says why);
    ``size``: the file's, for a download's 416 answer."""

    def __init__(self, message: str, size: int | None = None) -> None:
        super().__init__(message)
        self.size = size


@dataclass(frozen=True, slots=True)
class Piece:
    """``Content-Range: bytes START-END/SIZE`` (END inclusive), or a probe (``bytes */SIZE``:
    start and end None)."""

    start: int | None
    end: int | None
    size: int

    @property
    def is_probe(self) -> bool:
        return self.start is None

    @property
    def length(self) -> int:
        assert self.start is not None
        assert self.end is not None
        return self.end - self.start + 1


_CONTENT_RANGE = re.compile(r"^bytes (?:(\d{1,18})-(\d{1,18})|\*)/(\d{1,18})$")


def parse_content_range(header: str | None, *, declared_size: int) -> Piece:
    """The piece an upload request carries. No header: the whole file at once."""
    if header is None:
        if declared_size == 0:
            return Piece(None, None, 0)
        return Piece(0, declared_size - 1, declared_size)
    found = _CONTENT_RANGE.match(header.strip())
    if found is None:
        raise RangeError("Content-Range must be 'bytes START-END/SIZE' or 'bytes */SIZE' (a probe)")
    size = int(found.group(3))
    if size != declared_size:
        raise RangeError(f"this file was declared as {declared_size} bytes, not {size}")
    if found.group(1) is None:
        return Piece(None, None, size)
    start, end = int(found.group(1)), int(found.group(2))
    if end < start:
        raise RangeError(f"the range {start}-{end} ends before it starts")
    if end >= size:
        raise RangeError(f"the range {start}-{end} overruns the file's {size} bytes")
    return Piece(start, end, size)


_RANGE = re.compile(r"^bytes=(\d{0,18})-(\d{0,18})$")


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """A download's ``Range: bytes=a-b`` (or ``a-``, ``-n``) as [start, stop); None for the
    whole file. RangeError when it cannot be satisfied (416); several ranges are
    answered with the whole file (allowed by RFC 9110)."""
    if header is None or "," in header:
        return None
    found = _RANGE.match(header.strip())
    if found is None or (not found.group(1) and not found.group(2)):
        return None  # a malformed Range is ignored (RFC 9110)
    first, last = found.group(1), found.group(2)
    if not first:
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise RangeError("an empty suffix range", size)
        return max(0, size - suffix), size
    start = int(first)
    stop = min(int(last) + 1, size) if last else size
    if last and int(last) < start:
        return None
    if start >= size:
        raise RangeError(f"the file has {size} bytes", size)
    return start, stop
