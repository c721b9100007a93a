"""The ``batchgraph`` command.

Local commands (serve, worker, migrate, token, demo, export-schema) start or reach the
database themselves; remote ones (submit, batches, cancel, retry, workers) are thin
GraphQL calls to a running server (launcher.remote).
"""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import socket
import sys
import time
import warnings
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from typer.exceptions import TyperException

from db.config import Settings, SettingsError, load_settings
from db.enums import TokenRole
from db.filestores.factory import Stores
from db.session import connect
from db.uow import UnitOfWork
from domain.auth import service as auth
from domain.auth.rules import Actor
from domain.errors import DomainError
from launcher import console, remote
from launcher.artifacts import artifact_app
from launcher.client import ClientError
from launcher.runtime import (
    Infra,
    LauncherError,
    forget_server,
    infrastructure,
    migrate,
    record_server,
    require_migrated,
    spawn_worker,
    stop_worker,
)
from launcher.transfer import TransferError

# The operator at the console has the database in hand; acts as an admin.
OPERATOR = Actor(token_id=0, owner="operator (cli)", role=TokenRole.ADMIN)

app = typer.Typer(
    name="batchgraph",
    help="batchgraph: a GraphQL control plane for batch processing.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
token_app = typer.Typer(help="Manage tokens.", no_args_is_help=True)
app.add_typer(token_app, name="token")
app.add_typer(artifact_app, name="artifact")
remote.register(app)


def main(argv: list[str] | None = None) -> int:
    """Run one command; expected failures are one line on stderr and exit code 2."""
    # platformdirs (via pgserver) warns on every start when XDG_RUNTIME_DIR is unset,
    # as on servers and in containers; it falls back to /tmp and works.
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
    try:
        result = app(args=argv, prog_name="batchgraph", standalone_mode=False)
    except typer.Exit as exc:
        return int(exc.exit_code)
    except typer.Abort:
        console.error("interrupted")
        return 130
    except TyperException as exc:  # usage errors: typer shows them with the usage line
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            console.error(exc.format_message())
        return int(exc.exit_code)
    except (LauncherError, SettingsError, ClientError, TransferError) as exc:
        console.error(str(exc))
        return 2
    except DomainError as exc:
        console.error(f"{exc.code}: {exc.message}")
        return 2
    except (DBAPIError, OSError) as exc:
        console.error(f"the database could not be used: {_database_reason(exc)}")
        return 2
    except SQLAlchemyError as exc:
        console.error(f"the database could not be used: {type(exc).__name__}")
        return 2
    return result if isinstance(result, int) else 0


def _database_reason(exc: BaseException) -> str:
    """The driver's one-line reason, never the statement or its parameters."""
    original = getattr(exc, "orig", None) or exc
    text = str(original).strip().splitlines()
    return f"{type(original).__name__}: {text[0] if text else ''}".strip(": ")


def _settings() -> Settings:
    return load_settings()


# --- serve and worker -----------------------------------------------------------


@app.command()
def serve(
    host: Annotated[
        str | None, typer.Option(help="bind address [default: BATCHGRAPH_HOST]")
    ] = None,
    port: Annotated[int | None, typer.Option(help="port [default: BATCHGRAPH_PORT]")] = None,
    no_worker: Annotated[bool, typer.Option("--no-worker", help="do not start a worker")] = False,
    no_migrate: Annotated[bool, typer.Option("--no-migrate", help="do not migrate first")] = False,
    access_log: Annotated[
        bool, typer.Option("--access-log", help="log every HTTP request [BATCHGRAPH_ACCESS_LOG]")
    ] = False,
    workers: Annotated[
        int,
        typer.Option(
            min=1, help="API processes sharing the port (for machines with several cores)"
        ),
    ] = 1,
) -> int:
    """The API and GraphiQL, plus one fleet worker process."""

    from graphql_api.app import create_app
    from graphql_api.requestid import RequestIdLogFilter
    from graphql_api.server import DrainingServer, draining_server
    from graphql_api.settings import ApiSettings
    from jobs.broker import build_broker
    from jobs.dispatch import DramatiqDispatcher

    settings = _settings()
    if access_log:
        settings = settings.model_copy(update={"access_log": True})
    console.setup_logging(settings, role="api", filters=[RequestIdLogFilter()])
    api_settings = ApiSettings.of(settings)
    bind_host = host or settings.host
    bind_port = settings.port if port is None else port
    _require_free_port(bind_host, bind_port)
    with infrastructure(settings) as infra:
        if not no_migrate:
            migrate(infra.database_url)
        else:
            require_migrated(infra.database_url)
        secret = asyncio.run(_bootstrap_admin(infra.database_url))
        worker = None if no_worker else spawn_worker(infra, processes=1, threads=4)
        assert infra.broker_url is not None
        if workers > 1:
            try:
                _serve_processes(
                    infra.environment(),
                    settings,
                    api_settings,
                    bind_host,
                    bind_port,
                    workers,
                    secret,
                )
            finally:
                forget_server(settings.home)
                if worker is not None:
                    stop_worker(worker)
            return 0
        dispatcher = DramatiqDispatcher(build_broker(infra.broker_url))
        app_ = create_app(
            settings=api_settings,
            db=connect(infra.database_url, **api_settings.pool_options()),
            dispatcher=dispatcher,
            on_shutdown=dispatcher.close,
        )

        class Server(DrainingServer):
            async def startup(self, sockets: Any = None) -> None:
                await super().startup(sockets)
                if self.started:
                    port_ = self.servers[0].sockets[0].getsockname()[1] if self.servers else 0
                    url = f"http://{bind_host}:{port_}/graphql"
                    record_server(settings.home, url)
                    console.started(url, secret)

        server = draining_server(
            app_,
            drain=app_.state.drain,
            settings=api_settings,
            host=bind_host,
            port=bind_port,
            server_class=Server,
        )
        # uvicorn shuts down gracefully on SIGINT/SIGTERM, restores the handlers it
        # found, then raises the signal again: make SIGTERM (process managers) end
        # like Ctrl-C, so the worker is stopped below instead of orphaned.
        signal.signal(signal.SIGTERM, _interrupt)
        try:
            server.run()
        except KeyboardInterrupt:
            pass  # the re-raised signal after a graceful shutdown: a normal stop
        finally:
            forget_server(settings.home)
            if worker is not None:
                stop_worker(worker)
    return 0


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _serve_processes(
    environment: dict[str, str],
    settings: Settings,
    api_settings: Any,
    host: str,
    port: int,
    workers: int,
    secret: str | None,
) -> None:
    """Several API processes on one port (uvicorn's supervisor): each builds the app from
    the environment (graphql_api.app:app_from_env), with its own pools and event bus."""
    import uvicorn

    from graphql_api.server import uvicorn_options

    if port == 0:
        raise typer.BadParameter("--workers needs a fixed --port")
    os.environ.update(environment)
    if settings.access_log:
        os.environ["BATCHGRAPH_ACCESS_LOG"] = "true"
    url = f"http://{host}:{port}/graphql"
    record_server(settings.home, url)
    console.started(url, secret)
    uvicorn.run(
        "graphql_api.app:app_from_env",
        factory=True,
        workers=workers,
        host=host,
        port=port,
        **uvicorn_options(api_settings),
    )


@app.command()
def worker(
    processes: Annotated[int, typer.Option(min=1, help="worker processes")] = 2,
    threads: Annotated[int, typer.Option(min=1, help="threads per process")] = 4,
    no_migrate: Annotated[
        bool, typer.Option("--no-migrate", help="only check the schema is migrated")
    ] = False,
) -> int:
    """Fleet worker processes (Dramatiq) that run jobs of built-in implementations."""
    settings = _settings()
    console.setup_logging(settings, role="launcher")
    with infrastructure(settings) as infra:
        # Like serve (and safely alongside it: migrations take an advisory lock), so a
        # worker started with a fresh server never runs against a half-made schema.
        if no_migrate:
            require_migrated(infra.database_url)
        else:
            migrate(infra.database_url)
        process = spawn_worker(infra, processes=processes, threads=threads)
        stopping = False

        def stop(signum: int, frame: FrameType | None) -> None:
            nonlocal stopping
            if not stopping:
                stopping = True
                process.send_signal(signal.SIGTERM)

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        code = process.wait()
        return 0 if stopping else code


# --- the database ---------------------------------------------------------------


@app.command("migrate")
def migrate_command(
    revision: Annotated[str, typer.Argument(help="target revision")] = "head",
) -> int:
    """Bring the database schema up to date."""
    settings = _settings()
    console.setup_logging(settings.model_copy(update={"log_level": "WARNING"}), role="cli")
    with infrastructure(settings, broker=False) as infra:
        migrate(infra.database_url, revision)
    console.out.print(f"database is at {revision}")
    return 0


class Role(StrEnum):
    admin = "admin"
    writer = "writer"
    reader = "reader"
    worker = "worker"


@token_app.command("create")
def token_create(
    role: Annotated[Role, typer.Option(case_sensitive=False, help="what the token may do")],
    owner: Annotated[str, typer.Option(help="who or what uses it")],
    expires_in_days: Annotated[int | None, typer.Option(min=1, help="default: never")] = None,
) -> int:
    """Create a token and print its secret, once (on stdout; the rest on stderr)."""
    settings = _settings()
    console.setup_logging(settings.model_copy(update={"log_level": "WARNING"}), role="cli")
    expires_at = (
        datetime.now(UTC) + timedelta(days=expires_in_days) if expires_in_days is not None else None
    )
    with infrastructure(settings, create=False, broker=False) as infra:
        require_migrated(infra.database_url)
        created = asyncio.run(
            _create_token(infra.database_url, owner, TokenRole(role.value.upper()), expires_at)
        )
    print(created.secret, flush=True)
    console.err.print(
        f"token {created.token.id} for {console.shown(repr(created.token.owner), markup=False)}"
        f" ({created.token.role});"
        " the secret above is shown only once",
        markup=False,
    )
    return 0


# --- demo and schema ------------------------------------------------------------

DEMO_TIMEOUT_SECONDS = 180.0


@app.command()
def demo() -> int:
    """Seed a public 'demo' workspace whose batches run on the fleet."""
    from domain.demo import service as demo_service

    settings = _settings()
    console.setup_logging(settings.model_copy(update={"log_level": "WARNING"}), role="cli")
    with infrastructure(settings) as infra:
        migrate(infra.database_url)
        first = asyncio.run(
            _demo_step(infra, lambda units: demo_service.seed_first_batch(units, actor=OPERATOR))
        )
        if first is None:
            console.out.print(
                f"The {demo_service.WORKSPACE!r} workspace exists already; nothing was added."
            )
            return 0
        # Its own worker, so the demo completes with or without `make run`; quiet, so its
        # progress bars are what the console shows.
        process = spawn_worker(infra, processes=1, threads=4, log_level="WARNING")
        try:
            _wait_for(infra, first, demo_service.FIRST_TITLE)
            second = asyncio.run(
                _demo_step(
                    infra,
                    lambda units: demo_service.reprocess_failed(
                        units, actor=OPERATOR, first_batch_id=first
                    ),
                )
            )
            _wait_for(infra, second, demo_service.SECOND_TITLE)
            catalog: int | None = None
            for step, (title, _, _) in enumerate(demo_service.CATALOG_STEPS):
                made = asyncio.run(_demo_step(infra, _catalog_step(step, catalog)))
                catalog = catalog or made
                _wait_for(infra, made, title)
            stores = Stores(settings.files_path())
            third = asyncio.run(
                _demo_step(
                    infra,
                    lambda units: demo_service.seed_artifacts(units, stores, actor=OPERATOR),
                )
            )
            _wait_for(infra, third, demo_service.ARTIFACTS_TITLE)
            asyncio.run(
                _demo_step(
                    infra,
                    lambda units: demo_service.relate_report(
                        units, stores, actor=OPERATOR, batch_id=third
                    ),
                )
            )
        finally:
            stop_worker(process)
    assert catalog is not None
    root = base64.b64encode(f"Batch:{catalog}".encode()).decode()
    console.out.print(
        f"\nSeeded the public workspace {demo_service.WORKSPACE!r}, run by the fleet:\n"
        f"* {demo_service.FIRST_TITLE!r}: {demo_service.ITEMS} images"
        f" ({len(demo_service.FAILING)} resizes failed, their thumbnails canceled), a fixed"
        " revision of resize-image, and a second batch that re-processed the failed part;\n"
        f"* {demo_service.CATALOG_STEPS[0][0]!r}: a chain of three batches (root {root}),"
        " the second compressing faster, the third rendering slower;\n"
        "* caption documents, a batch whose jobs checksummed them into new artifacts, and a"
        " report relating to those.\n"
        "Explore it in GraphiQL (no token needed for a public workspace): the DemoChain\n"
        "and DemoLineage tabs, or\n\n"
        '  query DemoChain { batches(filter: { workspace: "demo" }) {\n'
        "    edges { node { id title isSuperseded\n"
        "      counters { jobsTotal completed failed canceled }\n"
        "      nodeMetrics { node completed failed runDuration { avg { iso } } } } } } }\n\n"
        f"compare the catalog chain:  .venv/bin/batchgraph compare {root}\n\n"
        "and the lineage of the report, in one SQL query:\n\n"
        "  query DemoLineage {\n"
        '    artifacts(filter: { workspace: "demo", category: "report" }) {\n'
        "      edges { node { lineage(depth: 5) {\n"
        "        nodes { depth artifact { category } } edges { type source target } } } } } }\n",
        markup=False,
    )
    return 0


def _require_free_port(host: str, port: int) -> None:
    """Say how to pick another port before anything starts (uvicorn would only print
    "address already in use" after the database, broker and worker came up)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise LauncherError(
                f"cannot listen on {host}:{port} ({exc.strerror}): another server (another"
                " batchgraph?) uses it. Pick another port: BATCHGRAPH_PORT=8011 make run,"
                " or serve --port 8011"
            ) from None


def _catalog_step(
    step: int, root: int | None
) -> Callable[[Callable[[], UnitOfWork]], Awaitable[int]]:
    from domain.demo import service as demo_service

    def run(units: Callable[[], UnitOfWork]) -> Awaitable[int]:
        return demo_service.catalog_step(units, actor=OPERATOR, step=step, root_batch_id=root)

    return run


async def _demo_step(infra: Infra, step: Callable[[Callable[[], UnitOfWork]], Any]) -> Any:
    from jobs.broker import build_broker
    from jobs.dispatch import DramatiqDispatcher

    assert infra.broker_url is not None
    dispatcher = DramatiqDispatcher(build_broker(infra.broker_url))
    db = connect(infra.database_url, pool_size=2, max_overflow=0)
    try:
        return await step(lambda: UnitOfWork(db.write_session, dispatcher=dispatcher))
    finally:
        await db.dispose()
        dispatcher.close()


def _wait_for(infra: Infra, batch_id: int, title: str) -> None:
    """Until the fleet has run every job of the batch, with a progress bar."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from domain.demo import service as demo_service

    async def poll() -> None:
        db = connect(infra.database_url, pool_size=1, max_overflow=0)
        deadline = time.monotonic() + DEMO_TIMEOUT_SECONDS
        try:
            with Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                console=console.out,
                transient=False,
            ) as bar:
                task = bar.add_task(title, total=None)
                while True:
                    found = await demo_service.progress(
                        lambda: UnitOfWork(db.write_session), batch_id=batch_id
                    )
                    bar.update(task, completed=found.finished, total=found.jobs_total or None)
                    if found.is_done:
                        return
                    if time.monotonic() > deadline:
                        raise LauncherError(
                            f"the fleet did not finish {title!r} in {DEMO_TIMEOUT_SECONDS:.0f} s"
                        )
                    await asyncio.sleep(0.25)
        finally:
            await db.dispose()

    asyncio.run(poll())


@app.command("export-schema")
def export_schema(
    output: Annotated[
        Path | None, typer.Option(help="write to this file instead of stdout")
    ] = None,
) -> int:
    """Print the GraphQL SDL (schema.graphql)."""
    from graphql_api.schema import export_sdl

    sdl = export_sdl()
    if output is not None:
        output.write_text(sdl)
    else:
        sys.stdout.write(sdl)
    return 0


async def _bootstrap_admin(database_url: str) -> str | None:
    db = connect(database_url, pool_size=1, max_overflow=0)
    try:
        async with UnitOfWork(db.write_session) as uow:
            secret = await auth.bootstrap_admin(uow)
            await uow.commit()
        return secret
    finally:
        await db.dispose()


async def _create_token(
    database_url: str, owner: str, role: TokenRole, expires_at: datetime | None
) -> auth.CreatedToken:
    db = connect(database_url, pool_size=1, max_overflow=0)
    try:
        async with UnitOfWork(db.write_session) as uow:
            created = await auth.create_token(
                uow,
                owner=owner,
                role=role,
                expires_at=expires_at,
                now=datetime.now(UTC),
                actor=OPERATOR,
            )
            await uow.commit()
        return created
    finally:
        await db.dispose()


if __name__ == "__main__":
    sys.exit(main())
