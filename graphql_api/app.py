"""The Starlette application: /graphql (HTTP + websockets), GraphiQL and its assets, probes."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

import domain.artifacts.service  # noqa: F401  (registers the artifacts.expire periodic task)
from db.events import RESYNC, TOKENS, EventBus, Notice
from db.filestores.factory import Stores
from db.rawpool import open_read_pool
from db.session import Database, connect
from db.uow import UnitOfWork
from domain.maintenance import service as maintenance
from domain.periodic.service import Scheduler
from domain.ports import Dispatcher
from graphql_api.auth.authenticator import Authenticator
from graphql_api.auth.revocation import TokenStatus
from graphql_api.bodylimit import BodyLimitMiddleware
from graphql_api.fanout import JobEventHub
from graphql_api.files import PREFIX as FILES_PREFIX
from graphql_api.files import FileEndpoints
from graphql_api.graphiql import ASSETS_DIR, ASSETS_PATH
from graphql_api.requestid import RequestIdMiddleware
from graphql_api.schema import build_schema
from graphql_api.server import Drain
from graphql_api.settings import ApiSettings
from graphql_api.view import BatchgraphGraphQL

log = logging.getLogger(__name__)
PROBE_TIMEOUT_SECONDS = 2.0
GRAPHQL_PATH = "/graphql"


def create_app(
    *,
    settings: ApiSettings,
    db: Database,
    dispatcher: Dispatcher,
    on_shutdown: Callable[[], None] | None = None,
) -> Front:
    events = EventBus(db.engine)
    stores = Stores(settings.files_dir)
    authenticator = Authenticator(db)
    files = FileEndpoints(db=db, dispatcher=dispatcher, authenticator=authenticator, stores=stores)
    drain = Drain()  # started by the server on SIGTERM (graphql_api.server)
    # Requests' and open connections' views of tokens, both dropped when a token changes.
    token_status = TokenStatus(db, ttl=settings.token_recheck_seconds)
    authenticator = Authenticator(
        db, ttl=settings.token_recheck_seconds, on_forget=token_status.forget
    )

    def token_changed(notice: Notice) -> None:
        if notice is RESYNC:  # the listener was away: anything may have changed
            authenticator.forget()
        elif notice.channel == TOKENS:
            authenticator.forget(int(notice.data["id"]))

    events.add_callback(token_changed)
    hub = JobEventHub(db, token_valid=token_status.holds)
    events.add_callback(hub.notice)
    view = BatchgraphGraphQL(
        schema=build_schema(settings.limits),
        events=events,
        db=db,
        dispatcher=dispatcher,
        settings=settings,
        authenticator=authenticator,
        hub=hub,
        stores=stores,
        token_status=token_status,
        allowed_origins=settings.cors_origins,
        connection_init_wait_timeout=timedelta(seconds=30),
        allow_queries_via_get=True,
    )

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        if drain.active:
            return JSONResponse({"status": "draining"}, status_code=503)
        problems = await readiness_problems(db, dispatcher)
        if problems:
            return JSONResponse({"status": "unavailable", **problems}, status_code=503)
        return JSONResponse({"status": "ready"})

    async def home(request: Request) -> Response:
        return RedirectResponse("/graphql")

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await events.start()  # one listening connection per process
        await hub.start()
        await token_status.start()
        view.read_pool = await open_read_pool(db.engine)
        settle_garbage_collector()
        stop = asyncio.Event()
        periodic = (
            asyncio.create_task(run_periodic(db, dispatcher, stores, stop), name="periodic")
            if settings.periodic
            else None
        )
        maintenance.set_requeue_after(settings.requeue_after_seconds)
        try:
            yield
        finally:
            stop.set()
            if periodic is not None:
                await periodic
            pool, view.read_pool = view.read_pool, None
            await pool.close()
            await token_status.stop()
            await hub.stop()
            await events.stop()
            await db.dispose()
            if on_shutdown is not None:
                on_shutdown()

    # The same layers for /graphql's POSTs (taken straight to them by Front) and for
    # everything else (through Starlette's router).
    middleware = [
        Middleware(RequestIdMiddleware),
        Middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "HEAD", "POST", "PUT", "OPTIONS"],
            allow_headers=[
                "authorization",
                "content-type",
                "x-request-id",
                "content-range",
                "range",
                "if-none-match",
            ],
            expose_headers=["x-request-id", "range", "content-range", "etag"],
        ),
        # File uploads stream to disk and are bounded by their declared size instead.
        Middleware(
            BodyLimitMiddleware,
            max_bytes=settings.limits.max_body_bytes,
            exempt_prefix=FILES_PREFIX,
        ),
    ]
    app = Starlette(
        routes=[
            Route("/", home),
            Route(GRAPHQL_PATH, view, methods=["GET", "POST"]),
            WebSocketRoute(GRAPHQL_PATH, view),
            *files.routes(),
            Mount(ASSETS_PATH, StaticFiles(directory=ASSETS_DIR)),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
        ],
        middleware=middleware,
        lifespan=lifespan,
    )
    app.state.drain = drain
    graphql: ASGIApp = view
    for layer in reversed(middleware):
        graphql = layer.cls(graphql, *layer.args, **layer.kwargs)
    return Front(app, graphql)


class Front:
    """The ASGI application: a POST to /graphql goes straight to its layers (request
    id, CORS, body limit) and the view; everything else, GET /graphql and websockets
    included, through Starlette — its router, its error and exception middleware and
    the same layers. On a small read the router and Starlette's own middleware were
    about a tenth of the request's CPU (README: Performance, Reads and subscriptions)."""

    def __init__(self, app: Starlette, graphql: ASGIApp) -> None:
        self.app = app
        self.graphql = graphql
        self.state = app.state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == GRAPHQL_PATH:
            await self.graphql(scope, receive, send)
        else:
            await self.app(scope, receive, send)


async def run_periodic(
    db: Database, dispatcher: Dispatcher, stores: Stores, stop: asyncio.Event
) -> None:
    """Run due periodic tasks until ``stop`` (other processes may run them too: each
    task runs in one process at a time)."""
    scheduler = Scheduler(
        lambda: UnitOfWork(db.write_session, dispatcher=dispatcher, file_stores=stores),
        runner=f"api {socket.gethostname()}:{os.getpid()}",
        now=lambda: datetime.now(UTC),
    )
    while not stop.is_set():
        try:
            wait = await scheduler.tick()
        except Exception:  # the database is away: try again in a while
            log.warning("periodic tasks could not run", exc_info=True)
            wait = 5.0
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), wait)


# Generation-0 collections every 50,000 net allocations instead of 700: a nested read
# allocates tens of thousands of short-lived objects, and under 16 concurrent
# requests the default made the cyclic collector about half of the CPU time.
GC_THRESHOLDS = (50_000, 20, 100)


def settle_garbage_collector() -> None:
    """After start-up: move what start-up built (schema, modules, pools) out of the
    collector's sight (``gc.freeze``) and collect young objects less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def app_from_env() -> Front:
    """The app as a factory (``uvicorn --factory graphql_api.app:app_from_env``), so that
    several server processes can share one port: each builds its own engine, broker
    connection and event bus from ``DATABASE_URL`` and ``BROKER_URL`` (both required
    here: whoever starts the processes resolves embedded servers first)."""
    from jobs.broker import build_broker
    from jobs.dispatch import DramatiqDispatcher

    settings = ApiSettings.from_env()
    dispatcher = DramatiqDispatcher(build_broker(os.environ["BROKER_URL"]))
    return create_app(
        settings=settings,
        db=connect(os.environ["DATABASE_URL"], **settings.pool_options()),
        dispatcher=dispatcher,
        on_shutdown=dispatcher.close,
    )


async def readiness_problems(db: Database, dispatcher: Dispatcher) -> dict[str, str]:
    """What keeps this process from serving: an unreachable database or broker."""

    async def database() -> None:
        async with db.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    problems: dict[str, str] = {}
    for name, check in (("database", database), ("broker", dispatcher.ping)):
        try:
            await asyncio.wait_for(check(), PROBE_TIMEOUT_SECONDS)
        except Exception as exc:  # any failure means "not ready"; say which and why
            log.warning("readiness: %s unavailable: %r", name, exc)
            problems[name] = f"{type(exc).__name__}: {exc}"[:300] or type(exc).__name__
    return problems
