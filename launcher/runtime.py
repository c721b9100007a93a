"""Bringing up what a process needs: the database and the broker (embedded when unset),
the schema check, the fleet worker processes, and the running server's address."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from alembic import command
from db.config import Settings, asyncpg_url
from jobs.broker import worker_timeout_ms
from launcher.embedded_postgres import start_embedded_postgres
from launcher.embedded_redis import start_embedded_redis
from launcher.processes import pid_alive

log = logging.getLogger(__name__)
REPO_ROOT = Path(__file__).resolve().parents[1]
SERVER_FILE = "server.json"


class LauncherError(Exception):
    """An expected condition a command reports in one line (no traceback)."""


@dataclass(frozen=True)
class Infra:
    database_url: str
    broker_url: str | None

    def environment(self) -> dict[str, str]:
        env = {"DATABASE_URL": self.database_url}
        if self.broker_url is not None:
            env["BROKER_URL"] = self.broker_url
            timeout = worker_timeout_ms(self.broker_url)
            if timeout is not None:
                env["dramatiq_worker_timeout"] = str(timeout)
        return env


def embedded_database_exists(home: Path) -> bool:
    return (home / "pg" / "PG_VERSION").is_file()


@contextmanager
def infrastructure(
    settings: Settings, *, create: bool = True, broker: bool = True
) -> Iterator[Infra]:
    """The database and broker URLs, starting embedded servers for the unset ones.

    ``create=False``: refuse to set up a new embedded database (a command that only
    reads or adds to an existing one must not make an empty one somewhere else).
    On exit this process lets go of the embedded servers; each stops when the last
    process using it lets go.
    """
    with ExitStack() as stack:
        database_url = settings.database_url
        if not database_url:
            if not create and not embedded_database_exists(settings.home):
                raise LauncherError(
                    f"there is no database in {settings.home / 'pg'} yet. Start the server"
                    " once (`make run` or `batchgraph serve`), or point BATCHGRAPH_HOME (or"
                    " DATABASE_URL) at the one you use."
                )
            database_url, pg = start_embedded_postgres(settings.home / "pg")
            stack.callback(pg.cleanup)
            log.info("embedded PostgreSQL in %s", settings.home / "pg")
        broker_url = settings.broker_url
        if broker and not broker_url:
            broker_url, redis_server = start_embedded_redis(settings.home)
            stack.callback(redis_server.release)
            log.info("embedded Redis in %s", settings.home / "redis")
        yield Infra(database_url=database_url, broker_url=broker_url)


def _alembic_config(database_url: str) -> Config:
    cfg = Config(str(REPO_ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(REPO_ROOT / "alembic"))
    cfg.attributes["url"] = database_url
    cfg.attributes["configure_logger"] = False
    return cfg


def migrate(database_url: str, revision: str = "head") -> None:
    command.upgrade(_alembic_config(database_url), revision)


async def _current_heads(database_url: str) -> set[str]:
    engine = create_async_engine(asyncpg_url(database_url), poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(
                lambda sync: set(MigrationContext.configure(sync).get_current_heads())
            )
    finally:
        await engine.dispose()


def require_migrated(database_url: str) -> None:
    """LauncherError, saying what to run, unless the database is at the code's schema."""
    wanted = set(ScriptDirectory.from_config(_alembic_config(database_url)).get_heads())
    current = asyncio.run(_current_heads(database_url))
    if current != wanted:
        at = ", ".join(sorted(current)) or "empty"
        raise LauncherError(
            f"the database schema is not up to date (it is at {at}; this version needs"
            f" {', '.join(sorted(wanted))}). Run `batchgraph migrate` (or start"
            " `batchgraph serve`, which migrates) first."
        )


def spawn_worker(
    infra: Infra, *, processes: int, threads: int, log_level: str | None = None
) -> subprocess.Popen[bytes]:
    """Start a Dramatiq worker (master + processes) in its own session.

    Its own session, so a terminal's Ctrl-C reaches only us; we then stop the
    master with SIGTERM (signalling the whole group can hang a child). Dramatiq's
    own log set-up is skipped: the worker processes log in batchgraph's format.
    """
    cmd = [
        sys.executable,
        "-m",
        "dramatiq",
        "--skip-logging",
        "jobs.worker",
        "--processes",
        str(processes),
        "--threads",
        str(threads),
    ]
    env = {**os.environ, **infra.environment()}
    if log_level is not None:
        env["BATCHGRAPH_LOG_LEVEL"] = log_level
    return subprocess.Popen(cmd, env=env, start_new_session=True, cwd=REPO_ROOT)


def stop_worker(process: subprocess.Popen[bytes], *, timeout: float = 30.0) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("worker %s did not stop in %.0fs; killing it", process.pid, timeout)
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return process.returncode


# --- the running server's address, for the command line's client ---------------


def record_server(home: Path, url: str) -> bool:
    """``serve`` notes where it listens, so commands run from anywhere find it.

    A server already recorded and still running keeps its record (the command line
    goes on talking to it; a second server on the same folder is reached by --url):
    returns False then.
    """
    home.mkdir(parents=True, exist_ok=True)
    path = home / SERVER_FILE
    existing = running_server_url(home)
    if existing is not None and existing != url:
        log.warning(
            "another server from %s is running at %s: the command line keeps using it"
            " (use --url %s for this one)",
            home,
            existing,
            url,
        )
        return False
    path.write_text(json.dumps({"url": url, "pid": os.getpid()}))
    return True


def forget_server(home: Path) -> None:
    path = home / SERVER_FILE
    try:
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()
    except (OSError, ValueError):
        pass


def running_server_url(home: Path) -> str | None:
    """The GraphQL URL of the server running from ``home``, if one is."""
    try:
        found = json.loads((home / SERVER_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(found, dict) or not isinstance(found.get("pid"), int):
        return None
    if not pid_alive(found["pid"]) or not isinstance(found.get("url"), str):
        return None
    return str(found["url"])
