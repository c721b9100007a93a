"""An embedded, real PostgreSQL (pgserver) for machines with no DATABASE_URL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from launcher.processes import pid_alive

DATABASE = "batchgraph"
# pgserver keeps the pids of the processes using a data folder here; the last
# one out stops the server.
_HANDLE_FILE = ".handle_pids.json"


def start_embedded_postgres(datadir: Path, database: str = DATABASE) -> tuple[str, Any]:
    """Start (or join) the PostgreSQL server in ``datadir``; return its URL and handle.

    Data is kept across restarts. Several processes may share the folder.
    """
    # Imported here: pgserver does work at import time that only this path needs.
    from pgserver.postgres_server import PostgresServer, get_server

    datadir.mkdir(parents=True, exist_ok=True)
    with PostgresServer._lock:
        _forget_dead_handles(datadir)
    server = get_server(datadir, cleanup_mode="stop")
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}';")
    if "(1 row)" not in exists:
        server.psql(f'CREATE DATABASE "{database}";')
    return server.get_uri(database), server


def _forget_dead_handles(datadir: Path) -> None:
    """A process killed with -9 leaves its pid behind, and then the server never stops.

    Drop pids that are no longer alive, so the last live process stops it again.
    """
    path = datadir / _HANDLE_FILE
    if not path.exists():
        return
    try:
        pids = [int(p) for p in json.loads(path.read_text())]
    except (ValueError, TypeError):
        pids = []
    path.write_text(json.dumps([p for p in pids if pid_alive(p)]))
