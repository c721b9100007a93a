"""One log format for every batchgraph process (API, fleet worker, command line).

Text for people at a console, or one JSON object per line for log collectors
(``BATCHGRAPH_LOG_FORMAT=json``). Lives in the lowest layer so that the API (via
the launcher) and the Dramatiq worker processes set it up the same way.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Literal

TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(role)s:%(process)d %(name)s: %(message)s"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
# Chatty at INFO about things an operator does not need: pgserver narrates initdb and
# pg_ctl, alembic its migration context; uvicorn's start-up lines repeat what the
# launcher prints once started.
QUIET = {
    "pgserver": logging.WARNING,
    "uvicorn.error": logging.WARNING,
    "pika": logging.WARNING,
    "alembic": logging.WARNING,
}


class _Role(logging.Filter):
    """Stamps each record with the process's role and a request id (``-`` outside one)."""

    def __init__(self, role: str) -> None:
        super().__init__()
        self.role = role

    def filter(self, record: logging.LogRecord) -> bool:
        record.role = self.role
        if not hasattr(record, "request_id"):
            record.request_id = "-"
        return True


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT, DATE_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        request_id = getattr(record, "request_id", "-")
        if request_id != "-":
            first, sep, rest = line.partition("\n")
            line = f"{first} [request {request_id}]{sep}{rest}"
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, role, pid, logger, message,
    requestId when in a request, and the traceback as ``exc``."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "role": getattr(record, "role", "-"),
            "pid": record.process,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", "-")
        if request_id != "-":
            entry["requestId"] = request_id
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(
    *,
    role: str,
    level: str = "INFO",
    fmt: Literal["text", "json"] = "text",
    access_log: bool = False,
    filters: Sequence[logging.Filter] = (),
) -> None:
    """Replace the root handlers with one on stderr in the chosen format."""
    handler = logging.StreamHandler()
    handler.addFilter(_Role(role))
    for extra in filters:
        handler.addFilter(extra)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name, quiet in QUIET.items():
        logging.getLogger(name).setLevel(max(quiet, logging.getLevelName(level)))
    # uvicorn's access lines: one per request, off unless asked for.
    logging.getLogger("uvicorn.access").setLevel(logging.INFO if access_log else logging.WARNING)
