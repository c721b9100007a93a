"""What the metrics benches share: a fresh database of their own, migrated.

On the server of DATABASE_URL when it is set (a database created for the run and
dropped after it), else on an embedded PostgreSQL in a temporary folder.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from db.config import asyncpg_url
from launcher.runtime import migrate


async def _admin(url: str, *statements: str) -> None:
    u = make_url(asyncpg_url(url))
    conn = await asyncpg.connect(
        user=u.username,
        password=u.password,
        host=u.query.get("host") or u.host,
        port=u.port,
        database=u.database,
    )
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


@contextlib.contextmanager
def fresh_database(prefix: str) -> Iterator[str]:
    """The URL of an empty, migrated database, dropped afterwards."""
    server = os.environ.get("DATABASE_URL")
    handle = None
    folder = None
    if not server:
        from launcher.embedded_postgres import start_embedded_postgres

        folder = tempfile.TemporaryDirectory(prefix=f"{prefix}-")
        server, handle = start_embedded_postgres(Path(folder.name) / "pg", "postgres")
    name = f"{prefix}_{os.getpid()}"
    asyncio.run(_admin(server, f'DROP DATABASE IF EXISTS "{name}"', f'CREATE DATABASE "{name}"'))
    url = make_url(asyncpg_url(server)).set(database=name).render_as_string(False)
    try:
        migrate(url)
        yield url
    finally:
        asyncio.run(_admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        if handle is not None:
            handle.cleanup()
        if folder is not None:
            folder.cleanup()


def uptime() -> str:
    """The machine's load, as `uptime` prints it (the benches print it with their figures)."""
    import subprocess

    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
