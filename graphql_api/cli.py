"""The ``batchgraph`` command: serve, worker, migrate, token create, demo, export-schema."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn

from db.config import InfraConfig
from db.enums import TokenRole
from db.session import connect
from db.uow import UnitOfWork
from domain.auth import service as auth
from domain.auth.rules import Actor
from domain.demo import service as demo
from domain.errors import DomainError
from graphql_api.requestid import configure_logging
from graphql_api.runtime import infrastructure, migrate, spawn_worker, stop_worker
from graphql_api.settings import ApiSettings

# The operator at the console has the database in hand; acts as an admin.
OPERATOR = Actor(token_id=0, owner="operator (cli)", role=TokenRole.ADMIN)


def main(argv: list[str] | None = None) -> int:
    # platformdirs (via pgserver) warns on every start when XDG_RUNTIME_DIR is unset,
    # as on servers and in containers; it falls back to /tmp and works.
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
    args = _parser().parse_args(argv)
    configure_logging()
    try:
        return int(args.handler(args))
    except DomainError as exc:
        print(f"error: {exc.code}: {exc.message}", file=sys.stderr)
        return 2


def _serve(args: argparse.Namespace) -> int:
    from graphql_api.app import create_app, uvicorn_options
    from jobs.broker import build_broker
    from jobs.dispatch import DramatiqDispatcher

    settings = ApiSettings.from_env()
    host = args.host or settings.host
    port = args.port or settings.port
    with infrastructure(InfraConfig.from_env()) as infra:
        if not args.no_migrate:
            migrate(infra.database_url)
        secret = asyncio.run(_bootstrap_admin(infra.database_url))
        if secret is not None:
            print(
                "\n  First start: an admin token was created. It is shown only this once:\n\n"
                f"    {secret}\n\n"
                '  Use it as the header  {"Authorization": "Bearer <token>"}\n',
                flush=True,
            )
        worker = None if args.no_worker else spawn_worker(infra, processes=1, threads=4)
        dispatcher = DramatiqDispatcher(build_broker(infra.broker_url))
        app = create_app(
            settings=settings,
            db=connect(infra.database_url),
            dispatcher=dispatcher,
            on_shutdown=dispatcher.close,
        )
        print(f"GraphiQL at http://{host}:{port}/graphql", flush=True)
        server = uvicorn.Server(
            uvicorn.Config(app, host=host, port=port, **uvicorn_options(settings))  # type: ignore[arg-type]
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
            if worker is not None:
                stop_worker(worker)
    return 0


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _worker(args: argparse.Namespace) -> int:
    with infrastructure(InfraConfig.from_env()) as infra:
        worker = spawn_worker(infra, processes=args.processes, threads=args.threads)
        stopping = False

        def stop(signum: int, frame: FrameType | None) -> None:
            nonlocal stopping
            if not stopping:
                stopping = True
                worker.send_signal(signal.SIGTERM)

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        code = worker.wait()
        return 0 if stopping else code


def _migrate(args: argparse.Namespace) -> int:
    with infrastructure(InfraConfig.from_env()) as infra:
        migrate(infra.database_url, args.revision)
    print("database is at", args.revision)
    return 0


def _token_create(args: argparse.Namespace) -> int:
    expires_at = (
        datetime.now(UTC) + timedelta(days=args.expires_in_days)
        if args.expires_in_days is not None
        else None
    )
    with infrastructure(InfraConfig.from_env()) as infra:
        created = asyncio.run(
            _create_token(infra.database_url, args.owner, TokenRole(args.role.upper()), expires_at)
        )
    print(created.secret)
    print(
        f"token {created.token.id} for {created.token.owner!r} ({created.token.role});"
        " the secret above is shown only once",
        file=sys.stderr,
    )
    return 0


def _demo(args: argparse.Namespace) -> int:
    with infrastructure(InfraConfig.from_env()) as infra:
        migrate(infra.database_url)
        result = asyncio.run(_seed_demo(infra.database_url))
    if not result.created:
        print(f"The {demo.WORKSPACE!r} workspace exists already; nothing was added.")
        return 0
    print(
        f"Seeded the public workspace {demo.WORKSPACE!r}: two task types, a batch of"
        f" {demo.ITEMS} images whose run was simulated ({len(demo.FAILING)} resizes failed),"
        " and a second batch re-processing the failed part of the chain.\n"
        "Explore it in GraphiQL (no token needed for a public workspace):\n\n"
        '  { batches(filter: {workspace: "demo"}) { edges { node { id title\n'
        "      counters { jobsTotal completed failed canceled pending }\n"
        "      metrics { node completed failed runDuration { avg { iso } } }\n"
        "      chain { title } } } } }\n"
    )
    return 0


async def _seed_demo(database_url: str) -> demo.DemoResult:
    db = connect(database_url, pool_size=2, max_overflow=0)
    try:
        return await demo.seed_demo(lambda: UnitOfWork(db.write_session), actor=OPERATOR)
    finally:
        await db.dispose()


def _submit(args: argparse.Namespace) -> int:
    """Create a batch from a JSON file; with --watch, follow it live until it ends."""
    from graphql_api import client

    token = args.token or os.environ.get("BATCHGRAPH_TOKEN")
    try:
        spec = json.loads(Path(args.file).read_text())
    except (OSError, ValueError) as exc:
        print(f"error: cannot read {args.file}: {exc}", file=sys.stderr)
        return 2
    try:
        created = client.post(args.url, token, client.CREATE, {"input": spec})["createBatch"]
        if created["__typename"] != "BatchCreated":
            for problem in (created.get("validation") or {}).get("errors") or [created]:
                print(f"error: {json.dumps(problem)}", file=sys.stderr)
            return 2
        batch = created["batch"]
        print(
            f"batch {batch['id']} {batch['title']!r}: {created['validation']['plannedJobs']} jobs",
            flush=True,
        )
        if not args.watch:
            return 0
        last: dict[str, int] = {}
        for update in _iterate(client.progress(args.url, token, batch["id"])):
            last = update["counters"]
            print("\r" + client.bar(last), end="", flush=True)
        print()
    except client.ClientError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 1 if last.get("failed") or last.get("canceled") else 0


def _iterate(updates: Any) -> Any:
    """Run an async iterator from this synchronous command."""
    loop = asyncio.new_event_loop()
    try:
        while True:
            try:
                yield loop.run_until_complete(updates.__anext__())
            except StopAsyncIteration:
                return
    finally:
        loop.close()


def _export_schema(args: argparse.Namespace) -> int:
    from graphql_api.schema import export_sdl

    sdl = export_sdl()
    if args.output:
        Path(args.output).write_text(sdl)
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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="batchgraph", description=__doc__)
    sub = parser.add_subparsers(required=True, metavar="command")

    serve = sub.add_parser("serve", help="the API and GraphiQL, plus one fleet worker process")
    serve.add_argument("--host", help="bind address (default BATCHGRAPH_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default BATCHGRAPH_PORT or 8000)")
    serve.add_argument("--no-worker", action="store_true", help="do not start a worker")
    serve.add_argument("--no-migrate", action="store_true", help="do not migrate first")
    serve.set_defaults(handler=_serve)

    worker = sub.add_parser("worker", help="a Dramatiq worker (processes × threads)")
    worker.add_argument("--processes", type=int, default=2)
    worker.add_argument("--threads", type=int, default=4)
    worker.set_defaults(handler=_worker)

    mig = sub.add_parser("migrate", help="bring the database schema up to date")
    mig.add_argument("revision", nargs="?", default="head")
    mig.set_defaults(handler=_migrate)

    token = sub.add_parser("token", help="manage tokens").add_subparsers(
        required=True, metavar="action"
    )
    create = token.add_parser("create", help="create a token and print its secret once")
    create.add_argument("--role", required=True, choices=[r.value.lower() for r in TokenRole])
    create.add_argument("--owner", required=True)
    create.add_argument("--expires-in-days", type=int)
    create.set_defaults(handler=_token_create)

    submit = sub.add_parser("submit", help="create a batch from a JSON file (--watch: follow it)")
    submit.add_argument("file", help='{"title": …, "workspace": …, "definition": {…}}')
    submit.add_argument(
        "--url", default=os.environ.get("BATCHGRAPH_URL", "http://127.0.0.1:8000/graphql")
    )
    submit.add_argument("--token", help="default: BATCHGRAPH_TOKEN")
    submit.add_argument(
        "--watch",
        action="store_true",
        help="show live progress; exit 1 if jobs failed or were canceled",
    )
    submit.set_defaults(handler=_submit)

    seed = sub.add_parser("demo", help="seed a public 'demo' workspace with batches to explore")
    seed.set_defaults(handler=_demo)

    export = sub.add_parser("export-schema", help="print the GraphQL SDL")
    export.add_argument("--output", help="write to this file instead of stdout")
    export.set_defaults(handler=_export_schema)
    return parser


if __name__ == "__main__":
    sys.exit(main())
