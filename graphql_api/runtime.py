"""Bringing up what a process needs: the database and the broker, embedded when unset."""

from __future__ import annotations

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

from alembic import command
from db.config import InfraConfig
from db.embedded import start_embedded_postgres
from jobs.broker import worker_timeout_ms
from jobs.embedded import start_embedded_redis

log = logging.getLogger(__name__)
REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Infra:
    database_url: str
    broker_url: str

    def environment(self) -> dict[str, str]:
        env = {"DATABASE_URL": self.database_url, "BROKER_URL": self.broker_url}
        timeout = worker_timeout_ms(self.broker_url)
        if timeout is not None:
            env["dramatiq_worker_timeout"] = str(timeout)
        return env


@contextmanager
def infrastructure(config: InfraConfig) -> Iterator[Infra]:
    """The database and broker URLs, starting embedded servers for the unset ones.

    On exit this process lets go of the embedded servers; each stops when the
    last process using it lets go.
    """
    with ExitStack() as stack:
        database_url = config.database_url
        if not database_url:
            database_url, pg = start_embedded_postgres(config.home / "pg")
            stack.callback(pg.cleanup)
            log.info("embedded PostgreSQL in %s", config.home / "pg")
        broker_url = config.broker_url
        if not broker_url:
            broker_url, redis_server = start_embedded_redis(config.home)
            stack.callback(redis_server.release)
            log.info("embedded Redis in %s", config.home / "redis")
        yield Infra(database_url=database_url, broker_url=broker_url)


def migrate(database_url: str, revision: str = "head") -> None:
    cfg = Config(str(REPO_ROOT / "alembic.ini"))
    cfg.attributes["url"] = database_url
    cfg.attributes["configure_logger"] = False
    command.upgrade(cfg, revision)


def spawn_worker(infra: Infra, *, processes: int, threads: int) -> subprocess.Popen[bytes]:
    """Start a Dramatiq worker (master + processes) in its own session.

    Its own session, so a terminal's Ctrl-C reaches only us; we then stop the
    master with SIGTERM (signalling the whole group can hang a child).
    """
    cmd = [
        sys.executable,
        "-m",
        "dramatiq",
        "jobs.worker",
        "--processes",
        str(processes),
        "--threads",
        str(threads),
    ]
    env = {**os.environ, **infra.environment()}
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
