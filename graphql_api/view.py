"""The GraphQL HTTP/websocket view: authentication, coded JSON errors, status folding."""

from __future__ import annotations

import asyncio
import json
import logging
import math
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import asyncpg
from cross_web import AsyncHTTPRequestAdapter, HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.http.parse_content_type import parse_content_type
from strawberry.types import ExecutionResult
from strawberry.types.unset import UNSET, UnsetType

from db.errors import is_pool_timeout
from db.events import EventBus
from db.session import Database
from domain.errors import ErrorCode, UnauthenticatedError
from domain.ports import Dispatcher, FileStores
from graphql_api import prepared, safejson
from graphql_api.auth.authenticator import Authenticator
from graphql_api.auth.revocation import TokenStatus
from graphql_api.bodylimit import BodyTooLarge
from graphql_api.context import Context
from graphql_api.errors import error_response, fold_statuses, present, status_for
from graphql_api.fanout import JobEventHub
from graphql_api.graphiql import render_graphiql
from graphql_api.jsonenc import dumps, dumps_text
from graphql_api.prepared import single_operation
from graphql_api.ratelimit import Budgets, identity
from graphql_api.requestid import current_request_id
from graphql_api.schema import BatchgraphSchema
from graphql_api.settings import ApiSettings
from graphql_api.websocket import TransportWSHandler

log = logging.getLogger("batchgraph.errors")


@dataclass
class _Begun:
    """What the lane of prepared reads did for this request before handing it to the
    full way, which uses it instead of doing it again: the context (authentication,
    the budget's door check) and the decoded body."""

    request: Request
    sub_response: Response
    context: Context
    body: bytes | None = None
    decoded: object = None


_begun: ContextVar[_Begun | None] = ContextVar("begun", default=None)


class RequestRejected(Exception):
    def __init__(
        self, status: int, code: ErrorCode, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


class BatchgraphGraphQL(GraphQL[Context, None]):
    graphql_transport_ws_handler_class = TransportWSHandler

    def __init__(
        self,
        *,
        db: Database,
        dispatcher: Dispatcher,
        settings: ApiSettings,
        authenticator: Authenticator,
        events: EventBus,
        hub: JobEventHub | None = None,
        stores: FileStores,
        token_status: TokenStatus | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            max_subscriptions_per_connection=settings.limits.max_subscriptions_per_connection,
            **kwargs,
        )
        self._budgets = Budgets(settings.rate_limit_points) if settings.rate_limit_enabled else None
        # Whether an open connection's token still holds (graphql_api.websocket).
        self.token_status = token_status or TokenStatus(db, ttl=settings.token_recheck_seconds)
        self._events = events
        self._db = db
        self._dispatcher = dispatcher
        self._settings = settings
        self._authenticator = authenticator
        self._hub = hub
        self.read_pool: asyncpg.Pool | None = None  # opened by the app's lifespan
        self._stores = stores
        schema = self.schema if isinstance(self.schema, BatchgraphSchema) else None
        self._planner = schema.planner if schema is not None else None
        self._prepared = schema.prepared if schema is not None else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        request = Request(scope=scope, receive=receive)
        memo = _begun.set(None)
        try:
            response = await self._answer_prepared(request) or await self.run(request)
        except RequestRejected as exc:
            response = error_response(exc.status, exc.code, exc.message, headers=exc.headers)
        except HTTPException as exc:
            code = (
                ErrorCode.LIMIT_EXCEEDED
                if "Too many operations" in exc.reason
                else ErrorCode.BAD_REQUEST
            )
            response = error_response(exc.status_code, code, exc.reason)
        except BodyTooLarge:
            raise  # answered 413 by the body limit (graphql_api.bodylimit)
        except Exception as exc:
            response = self._unexpected(exc)
        except asyncio.CancelledError as exc:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # this request really is being cancelled (the client left)
            # A stray cancellation (e.g. of shared work another branch gave up on):
            # an error like any other, not a plain-text 500.
            response = self._unexpected(exc)
        finally:
            _begun.reset(memo)
        await response(scope, receive, send)

    async def _answer_prepared(self, request: Request) -> Response | None:
        """A query the compiled path answered whole before, answered again without
        strawberry's machinery; None: the full way answers (graphql_api.prepared)."""
        if (
            self._planner is None
            or self._prepared is None
            or not self._settings.compiled_reads
            or request.method != "POST"
            # strawberry's own reading of the header: the lane takes a subset of what
            # the full way reads as JSON.
            or parse_content_type(request.headers.get("content-type", ""))[0] != "application/json"
        ):
            return None
        sub_response = await self.get_sub_response(request)
        # Authentication and the budget's door check come before the body is read.
        context = await self.get_context(request, response=sub_response)
        begun = _Begun(request, sub_response, context)
        _begun.set(begun)
        body = await request.body()
        try:
            decoded = self.decode_json(body)
        except (json.JSONDecodeError, RecursionError):  # the full way says what is wrong
            return None
        begun.body, begun.decoded = body, decoded
        operation = single_operation(decoded)
        known = self._prepared.recall(operation) if operation is not None else None
        if operation is None or known is None:
            return None
        result = await prepared.execute(self._planner, known, operation, context)
        if result is None:
            return None
        self._prepared.answered += 1
        response = await self.process_result(request, result)
        return self.create_response(response, sub_response)

    def _unexpected(self, exc: BaseException) -> Response:
        if is_pool_timeout(exc):
            log.warning("no database connection in time (request %s)", current_request_id())
            return error_response(
                503,
                ErrorCode.UNAVAILABLE,
                "The service is busy; retry shortly",
                headers={"Retry-After": self._retry_after()},
            )
        log.error("unexpected error (request %s)", current_request_id(), exc_info=exc)
        return error_response(
            500, ErrorCode.INTERNAL, f"Internal server error (request id {current_request_id()})"
        )

    def _retry_after(self) -> str:
        return str(max(1, math.ceil(self._settings.db_pool_timeout_seconds)))

    def decode_json(self, data: str | bytes) -> object:
        return safejson.loads(data, max_depth=self._settings.limits.max_json_depth)

    def parse_json(self, data: str | bytes) -> Any:
        begun = _begun.get()
        if begun is not None and begun.body is data:
            return begun.decoded
        try:
            return self.decode_json(data)
        except safejson.UnsafeJsonError as exc:
            raise HTTPException(400, exc.reason) from exc
        except json.JSONDecodeError as exc:
            raise HTTPException(400, "Unable to parse request body as JSON") from exc

    async def parse_http_body(
        self, request: AsyncHTTPRequestAdapter
    ) -> GraphQLRequestData | list[GraphQLRequestData]:
        try:
            parsed = await super().parse_http_body(request)
        except (AttributeError, TypeError) as exc:
            # strawberry assumes a JSON object (or list of them) and crashes otherwise
            raise HTTPException(
                400, "The request body must be a JSON object, or a list of them"
            ) from exc
        except safejson.UnsafeJsonError as exc:  # from GET's variables
            raise HTTPException(400, exc.reason) from exc
        if isinstance(parsed, list) and not parsed:
            raise HTTPException(400, "An empty list holds no operation")
        longest = self._settings.limits.max_query_chars
        for operation in parsed if isinstance(parsed, list) else [parsed]:
            if isinstance(operation.query, str) and len(operation.query) > longest:
                # Before anything reads it: a 15 MB comment is refused at the price of
                # its JSON (graphql-core's own limit locates its error by scanning it).
                raise RequestRejected(
                    400,
                    ErrorCode.LIMIT_EXCEEDED,
                    f"The document has {len(operation.query):,} characters; at most"
                    f" {longest:,} (BATCHGRAPH_MAX_QUERY_CHARS)",
                )
            # GET parameters do not pass through decode_json: check what they carry too.
            for text in (operation.query, operation.operation_name):
                reason = safejson.bad_string(text) if isinstance(text, str) else None
                if reason is not None:
                    raise HTTPException(400, reason)
            if operation.query and "\\u0000" in operation.query:
                # A GraphQL string literal's escape: PostgreSQL text cannot hold NUL.
                raise HTTPException(400, "NUL characters (\\u0000) are not accepted")
        return parsed

    async def get_sub_response(self, request: Request | WebSocket) -> Response:
        begun = _begun.get()
        if begun is not None and begun.request is request:
            return begun.sub_response
        return await super().get_sub_response(request)

    async def get_context(self, request: Request | WebSocket, response: Any) -> Context:
        begun = _begun.get()
        if begun is not None and begun.request is request and begun.sub_response is response:
            return begun.context
        context = Context(
            db=self._db,
            dispatcher=self._dispatcher,
            settings=self._settings,
            request_id=current_request_id(),
            events=self._events,
            request=request,
            response=response,
            budgets=self._budgets,
            authenticator=self._authenticator,
            hub=self._hub,
            read_pool=self.read_pool,
            compiled_reads=self._settings.compiled_reads,
            stores=self._stores,
        )
        if isinstance(request, Request):
            try:
                secret = bearer_secret(request.headers.get("authorization"))
            except ValueError as exc:
                raise RequestRejected(401, ErrorCode.UNAUTHENTICATED, str(exc)) from exc
            if secret is not None:
                try:
                    context.actor = await self._authenticator.authenticate(
                        secret, now=datetime.now(UTC)
                    )
                except UnauthenticatedError as exc:
                    raise RequestRejected(401, exc.code, exc.message) from exc
            if self._budgets is not None:
                # Out of points: refused before the body is even read.
                left = await self._budgets.has_some(identity(context.actor, request))
                if not left.allowed:
                    raise RequestRejected(
                        429,
                        ErrorCode.RATE_LIMITED,
                        f"The budget of {left.limit} points per minute is spent;"
                        f" retry in {left.reset_seconds} s",
                        headers=left.headers(),
                    )
        return context

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        """Websocket clients send their token in the connection_init payload."""
        params = context.connection_params or {}
        raw = params.get("Authorization") or params.get("authorization")
        if raw is None and isinstance(params.get("token"), str):
            raw = f"Bearer {params['token']}"
        try:
            secret = bearer_secret(raw if isinstance(raw, str) else None)
        except ValueError as exc:
            raise ConnectionRejectionError({"code": ErrorCode.UNAUTHENTICATED.value}) from exc
        if raw is not None and secret is None:
            raise ConnectionRejectionError({"code": ErrorCode.UNAUTHENTICATED.value})
        if secret is not None:
            try:
                context.actor = await self._authenticator.authenticate(
                    secret, now=datetime.now(UTC)
                )
            except UnauthenticatedError as exc:
                raise ConnectionRejectionError({"code": exc.code.value}) from exc
        # UNSET: acknowledge without a payload (graphql-ws clients refuse "payload": null).
        return UNSET

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        # Errors raised while the parser hooks start (e.g. the token limit) never
        # reach RequestPolicy's on_operation; present them here too (idempotent).
        if result.errors:
            result.errors = [present(e, current_request_id()) for e in result.errors]
        return await super().process_result(request, result)

    async def render_graphql_ide(self, request: Request) -> HTMLResponse:
        return HTMLResponse(render_graphiql(request))

    def create_response(
        self,
        response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse],
        sub_response: Response,
    ) -> Response:
        # Bytes straight from the encoder (compiled reads arrive as rendered JSON text).
        response = Response(dumps(response_data), media_type="application/json")
        response.headers.raw.extend(sub_response.headers.raw)
        if sub_response.background:
            response.background = sub_response.background
        response.status_code = sub_response.status_code or response_status(response_data)
        if response.status_code == 503 and "retry-after" not in response.headers:
            response.headers["Retry-After"] = self._retry_after()
        return response

    def encode_json(self, data: object) -> str:
        # Text, not bytes: the websocket handlers send this too, and a bytes payload
        # goes out as a binary frame, which browsers' graphql-ws clients cannot read.
        return dumps_text(data)


def response_status(data: GraphQLHTTPResponse | list[GraphQLHTTPResponse]) -> int:
    """200 when any data came back; otherwise the folded status of the errors."""
    results = data if isinstance(data, list) else [data]
    if any(r.get("data") is not None for r in results):
        return 200
    codes: list[str | None] = [
        cast(dict[str, Any], err.get("extensions") or {}).get("code")
        for r in results
        for err in cast(list[dict[str, Any]], r.get("errors") or [])
    ]
    return fold_statuses(status_for(code) for code in codes) if codes else 200


def bearer_secret(header: str | None) -> str | None:
    """The secret of ``Bearer <secret>``; None without a header; ValueError if malformed."""
    if header is None:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise ValueError("Authorization must be 'Bearer <token>'")
    return value.strip()
