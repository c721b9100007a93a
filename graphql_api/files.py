"""Artifact files over plain HTTP, next to /graphql (bytes do not belong in GraphQL).

``PUT /artifacts/{id}/files/{path}`` uploads, resumably (``Content-Range: bytes
START-END/SIZE``; ``bytes */SIZE`` probes how much arrived; see
domain/artifacts/uploads.py). ``GET`` (and ``HEAD``) downloads, with ``Range``,
``ETag`` = the sha256 and the declared ``Content-Type``. The same tokens and
workspace permissions as GraphQL; errors in the same coded JSON, with the request id.
Bodies stream through in pieces of a MiB at most, both ways.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from db.errors import StoreUnavailableError, is_pool_timeout
from db.session import Database
from db.uow import UnitOfWork
from domain.artifacts import rules, uploads
from domain.auth.rules import Actor
from domain.errors import DomainError, ErrorCode, UnauthenticatedError
from domain.ports import Dispatcher, FileStores
from graphql_api.auth.authenticator import Authenticator
from graphql_api.errors import HTTP_STATUS
from graphql_api.requestid import current_request_id

log = logging.getLogger("batchgraph.errors")
PATH = "/artifacts/{artifact:int}/files/{path:path}"
PREFIX = "/artifacts/"


def file_url(base: str, artifact_id: int, path: str) -> str:
    """Where a file is uploaded and downloaded (``base``: the server's root URL)."""
    return f"{base.rstrip('/')}/artifacts/{artifact_id}/files/{quote(path)}"


def coded(
    status: int, code: ErrorCode, message: str, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    """The project's error shape (as /graphql answers refusals), with extra extensions."""
    extensions = {"code": code.value, "requestId": current_request_id(), **extra}
    all_headers = {**(headers or {}), **({"WWW-Authenticate": "Bearer"} if status == 401 else {})}
    return JSONResponse(
        {"data": None, "errors": [{"message": message, "extensions": extensions}]},
        status_code=status,
        headers=all_headers,
    )


class FileEndpoints:
    def __init__(
        self,
        *,
        db: Database,
        dispatcher: Dispatcher,
        authenticator: Authenticator,
        stores: FileStores,
    ) -> None:
        self._db = db
        self._dispatcher = dispatcher
        self._authenticator = authenticator
        self._stores = stores

    def routes(self) -> list[Route]:
        return [Route(PATH, self.handle, methods=["GET", "HEAD", "PUT"])]

    def _units(self) -> UnitOfWork:
        return UnitOfWork(self._db.write_session, dispatcher=self._dispatcher)

    async def _actor(self, request: Request) -> Actor | None:
        from graphql_api.view import bearer_secret

        try:
            secret = bearer_secret(request.headers.get("authorization"))
        except ValueError as exc:
            raise UnauthenticatedError(str(exc)) from exc
        if secret is None:
            return None
        return await self._authenticator.authenticate(secret, now=datetime.now(UTC))

    async def handle(self, request: Request) -> Response:
        artifact_id = int(request.path_params["artifact"])
        path = str(request.path_params["path"])
        try:
            problems = rules.check_path(path, "path")
            if problems:
                return coded(400, ErrorCode.BAD_REQUEST, f"the path {problems[0].message}")
            actor = await self._actor(request)
            if request.method == "PUT":
                return await self._put(request, artifact_id, path, actor)
            return await self._get(request, artifact_id, path, actor)
        except uploads.UploadRefused as exc:
            return self._state_error(400, exc, exc.received)
        except uploads.DigestMismatch as exc:
            return self._state_error(409, exc, 0)
        except uploads.UploadBusy as exc:
            return coded(409, exc.code, exc.message, headers={"Retry-After": "1"})
        except rules.RangeError as exc:
            return coded(
                416,
                ErrorCode.BAD_REQUEST,
                f"the range cannot be satisfied: {exc}",
                headers={"Content-Range": f"bytes */{exc.size if exc.size is not None else '*'}"},
            )
        except DomainError as exc:
            return coded(HTTP_STATUS.get(exc.code, 400), exc.code, exc.message)
        except ClientDisconnect:
            return Response(status_code=400)  # nobody is listening any more
        except StoreUnavailableError as exc:
            log.warning("file store unavailable (request %s): %s", current_request_id(), exc)
            return coded(
                503,
                ErrorCode.UNAVAILABLE,
                "the file store is unavailable; retry shortly",
                headers={"Retry-After": "5"},
            )
        except Exception as exc:
            if is_pool_timeout(exc):
                return coded(
                    503,
                    ErrorCode.UNAVAILABLE,
                    "The service is busy; retry shortly",
                    headers={"Retry-After": "2"},
                )
            log.error("unexpected error (request %s)", current_request_id(), exc_info=exc)
            return coded(
                500,
                ErrorCode.INTERNAL,
                f"Internal server error (request id {current_request_id()})",
            )

    def _state_error(self, status: int, exc: DomainError, received: int) -> Response:
        headers = {"Range": f"bytes=0-{received - 1}"} if received > 0 else {}
        return coded(status, exc.code, exc.message, headers=headers, received=received)

    async def _put(
        self, request: Request, artifact_id: int, path: str, actor: Actor | None
    ) -> Response:
        declared = request.headers.get("content-length")
        state = await uploads.put(
            self._units,
            self._stores,
            artifact_id=artifact_id,
            path=path,
            content_range=request.headers.get("content-range"),
            content_length=int(declared) if declared and declared.isdigit() else None,
            body=request.stream(),
            actor=actor,
        )
        headers = {"Range": f"bytes=0-{state.received - 1}"} if state.received > 0 else {}
        return JSONResponse(
            {
                "path": state.path,
                "size": state.size,
                "received": state.received,
                "complete": state.complete,
            },
            status_code=201 if state.completed_now else 200,
            headers=headers,
        )

    async def _get(
        self, request: Request, artifact_id: int, path: str, actor: Actor | None
    ) -> Response:
        found = await uploads.get(
            self._units,
            self._stores,
            artifact_id=artifact_id,
            path=path,
            range_header=request.headers.get("range"),
            actor=actor,
        )
        entry = found.entry
        etag = f'"{entry.sha256}"'
        start, stop = found.span
        headers = {
            "ETag": etag,
            "Accept-Ranges": "bytes",
            "Content-Length": str(stop - start),
            "Content-Type": entry.content_type,
            "Cache-Control": "private, max-age=0",
        }
        if request.headers.get("if-none-match") in (etag, "*"):
            return Response(status_code=304, headers={"ETag": etag})
        status = 200
        if found.partial:
            status = 206
            headers["Content-Range"] = f"bytes {start}-{stop - 1}/{entry.size}"
        if request.method == "HEAD" or stop <= start:
            return Response(status_code=status, headers=headers)
        return StreamingResponse(
            found.store.read(entry.sha256, start, stop), status_code=status, headers=headers
        )
