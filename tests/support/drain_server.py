"""A real server for the drain tests: the app plus two test routes, under
graphql_api.server's draining uvicorn. Run as ``python -m tests.support.drain_server PORT``.

/slow sleeps (an in-flight request that must finish); /spin pins the event loop
(a pathological request the watchdog must not wait for).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from db.logs import configure_logging
from db.session import connect
from graphql_api.app import create_app
from graphql_api.requestid import RequestIdLogFilter
from graphql_api.server import draining_server
from graphql_api.settings import ApiSettings
from jobs.broker import build_broker
from jobs.dispatch import DramatiqDispatcher


async def slow(request: Request) -> Response:
    await asyncio.sleep(float(request.query_params.get("seconds", "1.5")))
    return JSONResponse({"slow": "done"})


async def spin(request: Request) -> Response:
    end = time.monotonic() + 120
    while time.monotonic() < end:  # never yields to the loop
        pass
    return JSONResponse({"spin": "done"})


def main() -> None:
    configure_logging(role="api", filters=[RequestIdLogFilter()])
    settings = ApiSettings.from_env()
    dispatcher = DramatiqDispatcher(build_broker(os.environ["BROKER_URL"]))
    inner = create_app(
        settings=settings, db=connect(os.environ["DATABASE_URL"]), dispatcher=dispatcher
    )
    app = Starlette(
        routes=[Route("/slow", slow), Route("/spin", spin), Mount("/", inner)],
        lifespan=inner.app.router.lifespan_context,
    )
    server = draining_server(
        app, drain=inner.state.drain, settings=settings, host="127.0.0.1", port=int(sys.argv[1])
    )
    server.run()


if __name__ == "__main__":
    main()
