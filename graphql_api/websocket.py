"""graphql-transport-ws, held to the protocol and to the error convention.

Over strawberry's handler:

* message ids must be non-empty strings and a subscribe payload must carry a
  query (the protocol says so): anything else closes the socket with 4400, and a
  message that is not acceptable JSON says why (graphql_api.safejson's reason);
* every error an operation meets, before or during execution, is sent coded
  (an ``error`` message for pre-execution errors, limits included: never only
  ``complete``, never a closed socket); the per-connection cap on operations too;
* the connection's token must still hold (graphql_api.auth.revocation) at every
  subscribe and before every delivery, and the process's token watcher closes an
  idle connection whose token was disabled or expired: 4403 in every case;
* once the socket is closed nothing more is sent (operations still finishing
  would otherwise fail, and be logged, on a closed socket).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any

from graphql import GraphQLError
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState
from strawberry.http.exceptions import (
    NonJsonMessageReceived,
    NonTextMessageReceived,
    WebSocketDisconnected,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
    _OperationStreamClosed,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    ConnectionInitMessage,
    Message,
    SubscribeMessage,
)
from strawberry.types.execution import ExecutionResult, PreExecutionError

from domain.errors import ErrorCode
from graphql_api import safejson
from graphql_api.context import Context
from graphql_api.errors import ApiError, present

log = logging.getLogger(__name__)
FORBIDDEN = 4403
# The graphql-transport-ws operation a subscription resolver runs for (set by the handler).
CURRENT_OPERATION: ContextVar[str] = ContextVar("graphql_operation")
BAD_REQUEST = 4400
REVOKED_REASON = "The token no longer holds"
MAX_CLOSE_REASON_BYTES = 123  # RFC 6455: a close frame's payload is at most 125 bytes


class SocketClosed(Exception):
    """The socket is closed (by the server or the client): stop writing to it."""


def is_closed(socket: WebSocket) -> bool:
    return WebSocketState.DISCONNECTED in (socket.application_state, socket.client_state)


def sender(socket: WebSocket) -> Callable[[str], Awaitable[None]]:
    """``socket.send_text`` that raises SocketClosed, and only that, once it is closed."""

    async def send(text: str) -> None:
        if is_closed(socket):
            raise SocketClosed
        try:
            await socket.send_text(text)
        except (RuntimeError, WebSocketDisconnect, OSError) as exc:
            raise SocketClosed from exc

    return send


async def close_revoked(socket: WebSocket) -> None:
    """Close with 4403 (the token no longer holds), unless already closed."""
    if not is_closed(socket):
        with contextlib.suppress(RuntimeError, WebSocketDisconnect, OSError):
            await socket.close(code=FORBIDDEN, reason=REVOKED_REASON)


def close_reason(text: str) -> str:
    """``text`` cut to what a close frame can carry (in UTF-8 bytes)."""
    encoded = text.encode()
    if len(encoded) <= MAX_CLOSE_REASON_BYTES:
        return text
    return encoded[: MAX_CLOSE_REASON_BYTES - 3].decode(errors="ignore") + "..."


class TransportWSHandler(BaseGraphQLTransportWSHandler[Context, None]):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._watching: contextlib.ExitStack | None = None  # the token watcher's registration

    async def handle(self) -> None:
        # strawberry's loop, with the reason a message was refused as JSON.
        self.on_request_accepted()
        try:
            try:
                async for message in self.websocket.iter_json():
                    await self.handle_message(message)  # type: ignore[arg-type]
            except NonTextMessageReceived:
                await self.handle_invalid_message("WebSocket message type must be text")
            except NonJsonMessageReceived as exc:
                await self.handle_invalid_message(_json_reason(exc))
        except WebSocketDisconnected:
            pass
        finally:
            await self.shutdown()

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        await super().handle_connection_init(message)
        status = self._token_status()
        if self.connection_acknowledged and status is not None and self._watching is None:
            # Closed by the process's token watcher if the token stops holding, idle or not.
            self._watching = contextlib.ExitStack()
            self._watching.enter_context(status.watch(self.context.actor, self.close_revoked))

    async def shutdown(self) -> None:
        if self._watching is not None:
            self._watching.close()
        await super().shutdown()

    async def run_operation(self, operation: Operation[Context, None]) -> None:
        # Lets a subscription know its operation id, so the job event hub can write its
        # ``next`` frames itself (graphql_api.fanout).
        CURRENT_OPERATION.set(operation.id)
        await super().run_operation(operation)

    async def handle_message(self, message: Message) -> None:
        raw: Any = message
        if not isinstance(raw, dict) or not isinstance(raw.get("type"), str):
            await self.handle_invalid_message("Messages are JSON objects with a type")
            return
        if raw["type"] in ("subscribe", "complete") and (
            not isinstance(raw.get("id"), str) or not raw["id"]
        ):
            await self.handle_invalid_message("Operation ids are non-empty strings")
            return
        if raw["type"] == "subscribe":
            payload = raw.get("payload")
            if not isinstance(payload, dict) or not isinstance(payload.get("query"), str):
                await self.handle_invalid_message("A subscribe payload carries a query string")
                return
            variables = payload.get("variables")
            if variables is not None and not isinstance(variables, dict):
                await self.handle_invalid_message("Variables are a JSON object")
                return
            if self.connection_acknowledged and not await self._token_holds():
                await self.close_revoked()
                return
        await super().handle_message(message)

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        cap = self.max_subscriptions_per_connection
        if (
            self.connection_acknowledged
            and message["id"] not in self.operations
            and cap is not None
            and len(self.operations) >= cap
        ):
            # strawberry's own refusal carries neither a code nor a request id.
            error = ApiError(
                ErrorCode.LIMIT_EXCEEDED,
                f"Subscription limit reached: at most {cap} operations at once per connection",
            )
            await self.send_message(
                {
                    "id": message["id"],
                    "type": "error",
                    "payload": [present(error, self.context.request_id).formatted],
                }
            )
            return
        await super().handle_subscribe(message)

    async def send_message(self, message: Message) -> None:
        socket = self._socket()
        if socket is not None and is_closed(socket):
            return  # closed: an operation finishing late has no one to tell
        try:
            await super().send_message(message)
        except RuntimeError:
            if socket is None or not is_closed(socket):
                raise  # closed while sending: as above

    async def close_revoked(self) -> None:
        """Close with 4403 and stop this connection's operations."""
        socket = self._socket()
        if socket is not None:
            await close_revoked(socket)
        current = asyncio.current_task()
        for operation in list(self.operations.values()):
            if operation.task is not None and operation.task is not current:
                operation.task.cancel()

    async def _send_result_stream(self, operation: Operation[Context, None], source: Any) -> None:
        try:
            await self._send_results(operation, source)
        except GraphQLError as error:
            # Raised by the parser hooks (ParserCache parses in its hook, outside
            # strawberry's own try): the token limit, a syntax error.
            await operation.send_initial_errors([present(error, self.context.request_id)])

    async def _send_results(self, operation: Operation[Context, None], source: Any) -> None:
        first = True
        async for result in source:
            if result.errors:
                result.errors = [present(e, self.context.request_id) for e in result.errors]
            if first and isinstance(result, PreExecutionError):
                await operation.send_initial_errors(result.errors or [])
                return
            if not isinstance(result, ExecutionResult):
                await self._reject_incremental_delivery(operation)
                return
            if not await self._token_holds():
                await self.close_revoked()
                raise _OperationStreamClosed
            await operation.send_next(result)
            first = False

    async def _token_holds(self) -> bool:
        status = self._token_status()
        if status is None:
            return True
        try:
            return await status.holds(self.context.actor)
        except Exception:  # the check could not run (e.g. pool busy): the watcher retries
            log.warning("could not re-check token of %s", self.context.actor, exc_info=True)
            return True

    def _token_status(self) -> Any:
        return getattr(self.view, "token_status", None)

    def _socket(self) -> WebSocket | None:
        request = self.context.request
        return request if isinstance(request, WebSocket) else None


def _json_reason(exc: NonJsonMessageReceived) -> str:
    cause = exc.__cause__
    reason = cause.reason if isinstance(cause, safejson.UnsafeJsonError) else None
    if reason is None and cause is not None:
        reason = str(cause)
    text = "WebSocket message must be valid JSON"
    return close_reason(f"{text}: {reason}" if reason else text)
