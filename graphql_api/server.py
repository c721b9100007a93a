"""uvicorn, with a drain on SIGTERM/SIGINT.

1. SIGTERM arrives: ``/readyz`` answers 503 at once (a load balancer takes the
   process out) while everything is still served, for ``drain_seconds``.
2. Then uvicorn's graceful shutdown: no new connections, in-flight requests
   finish, websockets get a close frame (1012, service restart), for at most
   ``shutdown_seconds`` (uvicorn's ``timeout_graceful_shutdown``).
3. A watchdog thread ends the process if it is still there after both plus a
   second: a request pinning the event loop cannot keep it alive.

SIGINT (Ctrl-C at a console) and a second signal skip the drain window.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from types import FrameType
from typing import Any

import uvicorn
from starlette.types import ASGIApp

from graphql_api.settings import ApiSettings

log = logging.getLogger(__name__)


class Drain:
    """Set once the process is going away; /readyz reads it."""

    def __init__(self) -> None:
        self.started_at: float | None = None

    @property
    def active(self) -> bool:
        return self.started_at is not None

    def start(self) -> None:
        if self.started_at is None:
            self.started_at = time.monotonic()


class DrainingServer(uvicorn.Server):
    def __init__(
        self,
        config: uvicorn.Config,
        *,
        drain: Drain,
        drain_seconds: float,
        shutdown_seconds: float,
    ) -> None:
        super().__init__(config)
        self.drain = drain
        self.drain_seconds = drain_seconds
        self.shutdown_seconds = shutdown_seconds

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.drain.active or sig != signal.SIGTERM:
            # Ctrl-C at a console, or a second signal: no drain window.
            super().handle_exit(sig, frame)
            return
        self.drain.start()
        log.info(
            "draining: /readyz answers 503; stopping in %.1f s (at most %.1f s more for"
            " in-flight requests)",
            self.drain_seconds,
            self.shutdown_seconds,
        )
        stop = threading.Timer(self.drain_seconds, self._stop, args=(sig, frame))
        stop.daemon = True
        stop.start()
        deadline = self.drain_seconds + self.shutdown_seconds + 1.0
        watchdog = threading.Timer(deadline, self._abandon, args=(deadline,))
        watchdog.daemon = True
        watchdog.start()

    def _stop(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)

    def _abandon(self, after: float) -> None:
        log.error("still running %.1f s after the signal: exiting now", after)
        logging.shutdown()
        os._exit(1)


def uvicorn_options(settings: ApiSettings) -> dict[str, Any]:
    """What every way of serving the app passes to uvicorn (one process or several)."""
    return {
        "log_config": None,
        "lifespan": "on",
        "ws": "websockets-sansio",
        # Frames are small JSON (a job event is ~150 bytes): compressing each one per
        # connection cost more CPU than anything else done per subscriber.
        "ws_per_message_deflate": False,
        "access_log": settings.access_log,
        "timeout_graceful_shutdown": max(1, round(settings.shutdown_seconds)),
    }


def draining_server(
    app: ASGIApp,
    *,
    drain: Drain,
    settings: ApiSettings,
    host: str,
    port: int,
    server_class: type[DrainingServer] = DrainingServer,
) -> DrainingServer:
    config = uvicorn.Config(app, host=host, port=port, **uvicorn_options(settings))
    return server_class(
        config,
        drain=drain,
        drain_seconds=settings.drain_seconds,
        shutdown_seconds=settings.shutdown_seconds,
    )
