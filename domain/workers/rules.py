"""Workers (debusine): names from host names, connected-ness, metadata overlay."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from datetime import datetime, timedelta
from typing import Any

DEFAULT_TIMEOUT_SECONDS = 20  # + a maintenance tick of 10 s: lost within 30 s
MAX_NAME = 100
MAX_METADATA_BYTES = 16 * 1024


def slugify(host: str) -> str:
    """``build1.example.org`` → ``build1-example-org``."""
    slug = re.sub(r"[^a-z0-9]+", "-", host.lower()).strip("-")
    return (slug or "worker")[:MAX_NAME]


def free_name(host: str, taken: Collection[str]) -> str:
    """The slug, or the first of ``slug-2``, ``slug-3``, … that is free."""
    base = slugify(host)
    if base not in taken:
        return base
    n = 2
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"


def is_connected(
    *,
    connected_at: datetime | None,
    last_seen_at: datetime | None,
    now: datetime,
    timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS,
) -> bool:
    """Connected and heard from within the timeout (timed out only when strictly past it)."""
    if connected_at is None or last_seen_at is None:
        return False
    return now - last_seen_at <= timedelta(seconds=timeout_seconds)


def metadata(static: Mapping[str, Any], dynamic: Mapping[str, Any]) -> dict[str, Any]:
    """What the worker reports, overlaid by what an admin set: static wins."""
    return {**dynamic, **static}
