"""graphql-transport-ws, held to the protocol and to the error convention.

Over strawberry's handler:

* message ids must be non-empty strings and a subscribe payload must carry a
  query (the protocol says so): anything else closes the socket with 4400;
* every error an operation meets, before or during execution, is sent coded
  (an ``error`` message for pre-execution errors, limits included: never only
  ``complete``, never a closed socket);
* before each delivery the connection's token must still hold
  (graphql_api.auth.revocation): a disabled or expired token closes the socket
  with 4403;
* at most ``max_subscriptions_per_connection`` operations run at once on one
  connection (strawberry's cap; more get an ``error`` message).
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from graphql import GraphQLError
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
    _OperationStreamClosed,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import Message
from strawberry.types.execution import ExecutionResult, PreExecutionError

from graphql_api.context import Context
from graphql_api.errors import present

log = logging.getLogger(__name__)
FORBIDDEN = 4403
# The graphql-transport-ws operation a subscription resolver runs for (set by the handler).
CURRENT_OPERATION: ContextVar[str] = ContextVar("graphql_operation")
BAD_REQUEST = 4400


class TransportWSHandler(BaseGraphQLTransportWSHandler[Context, None]):
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
        await super().handle_message(message)

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
                await self.websocket.close(code=FORBIDDEN, reason="The token no longer holds")
                raise _OperationStreamClosed
            await operation.send_next(result)
            first = False

    async def _token_holds(self) -> bool:
        actor = self.context.actor
        status = getattr(self.view, "token_status", None)
        if actor is None or status is None or actor.token_id == 0:
            return True
        try:
            return bool(await status.usable(actor.token_id, now=datetime.now(UTC)))
        except Exception:  # the check could not run (e.g. pool busy): ask again next time
            log.warning("could not re-check token %s", actor.token_id, exc_info=True)
            return True
