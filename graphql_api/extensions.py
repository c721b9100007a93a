"""The request policy, one schema extension set up once per process.

Every operation, over HTTP or a websocket, passes the same gates in order:

1. parse, bounded: at most ``max_query_chars`` characters, ``max_tokens`` tokens
   and as many comments (graphql-core's parser limits);
2. shape (graphql_api.shape): depth, aliases, duplicate fields, fragment spreads,
   measured in one memoized pass *before* validation, so no document can make
   validation expensive; then validation, cached per document text;
3. cost (graphql_api.cost), from the document and the variables, before
   execution: over ``max_cost`` it is refused, and so is an anonymous operation
   whose variables hold more than ``max_anonymous_input_values`` JSON values;
   otherwise its points (the answer's size and the input's) are taken from the
   caller's budget (graphql_api.ratelimit), or it is refused with RATE_LIMITED;
4. every error of the result is put in its client form (coded; unexpected ones
   masked and logged).

Refusals happen before any resolver runs, so they cost no SQL.

A query answered whole by the compiled path is answered again by the view directly
(graphql_api.prepared): gates 1 and 2 depend on the document alone and it passed
them; gates 3 and 4 it passes through this module's functions (``appraise``,
``refusal``, ``spend``, ``rate_limited``, ``cost_report``), as the policy does.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterator, Iterator
from typing import Any

import orjson
from graphql import (
    ASTValidationRule,
    DocumentNode,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
)
from graphql.validation import NoSchemaIntrospectionCustomRule
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import validate_document
from strawberry.types.graphql import OperationType

from domain.errors import ErrorCode
from graphql_api.cost import LIST_SIZES, input_values, introspection_sizes, operation_cost
from graphql_api.errors import ApiError, present
from graphql_api.ratelimit import Spent, identity, points
from graphql_api.settings import Limits
from graphql_api.shape import ShapeError, check_shape

VALIDATION_CACHE_SIZE = 1024
_Outcome = list[GraphQLError]
_validated: OrderedDict[tuple[str, tuple[type[ASTValidationRule], ...]], _Outcome] = OrderedDict()
# Costs of recent (document, operation, small variables): a client's poll repeats them.
COST_CACHE_SIZE = 1024
COST_CACHE_MAX_INPUT_VALUES = 64
_costs: OrderedDict[tuple[str, str | None, bytes], int] = OrderedDict()


def _validate(execution_context: Any, limits: Limits) -> _Outcome:
    """Shape first (cheap, bounded), then graphql-core's rules; cached per document text."""
    rules: tuple[type[ASTValidationRule], ...] = tuple(execution_context.validation_rules)
    key = (execution_context.query or "", rules)
    found = _validated.get(key)
    if found is not None:
        _validated.move_to_end(key)
        return found
    document = execution_context.graphql_document
    try:
        check_shape(document, limits)
        errors = validate_document(execution_context.schema._schema, document, rules)
    except ShapeError as exc:
        errors = [ApiError(exc.code, exc.message, limit=exc.what)]
    if execution_context.query:
        _validated[key] = errors
        while len(_validated) > VALIDATION_CACHE_SIZE:
            _validated.popitem(last=False)
    return errors


def _operations(document: DocumentNode | None) -> int:
    if document is None:
        return 0
    return sum(isinstance(d, OperationDefinitionNode) for d in document.definitions)


class RequestPolicy(SchemaExtension):
    limits: Limits = Limits()

    def __init__(self) -> None:
        self.cost: int | None = None
        self.input_values = 0
        self.spent: Spent | None = None

    async def on_operation(self) -> AsyncIterator[None]:
        ctx = self.execution_context
        limits = self.limits
        options: dict[str, Any] = ctx.parse_options  # type: ignore[assignment]
        options.update(
            max_lexical_tokens=limits.max_tokens,
            max_comments=limits.max_tokens,
            max_source_length=limits.max_query_chars,
        )
        context: Any = ctx.context
        if context is not None and not context.settings.introspection:
            ctx.validation_rules = (*ctx.validation_rules, NoSchemaIntrospectionCustomRule)
        yield
        if self.spent is None:  # refused before execution: that costs a point too
            await self._spend(1)
        result = ctx.result
        request_id = getattr(context, "request_id", "-")
        # strawberry hands the same errors over twice (the result's and, as a copy of
        # that list, ``pre_execution_errors``): present each one once, or an unexpected
        # error is logged twice under one request id.
        presented: dict[int, GraphQLError] = {}

        def once(error: GraphQLError) -> GraphQLError:
            if id(error) not in presented:
                presented[id(error)] = present(error, request_id)
            return presented[id(error)]

        if result is not None and result.errors:
            result.errors = [once(error) for error in result.errors]
        if ctx.pre_execution_errors:
            ctx.pre_execution_errors = [once(error) for error in ctx.pre_execution_errors]

    def on_validate(self) -> Iterator[None]:
        ctx = self.execution_context
        request = getattr(ctx.context, "request", None)
        if ctx.operation_type is OperationType.SUBSCRIPTION and not isinstance(request, WebSocket):
            ctx.pre_execution_errors = [
                ApiError(
                    ErrorCode.BAD_REQUEST,
                    "Subscriptions are served over websockets (graphql-transport-ws) only",
                )
            ]
        elif ctx._provided_operation_name is None and _operations(ctx.graphql_document) > 1:
            # The spec's GetOperation: several operations and no name is a request error
            # (strawberry would run the first, even a mutation). ``operation_name``
            # answers the first operation's name when none was sent: hence the field.
            ctx.pre_execution_errors = [
                ApiError(
                    ErrorCode.BAD_REQUEST,
                    "The document holds several operations: name the one to run (operationName)",
                )
            ]
        else:
            ctx.pre_execution_errors = _validate(ctx, self.limits)
        yield

    async def on_execute(self) -> AsyncIterator[None]:
        ctx = self.execution_context
        assert ctx.graphql_document is not None
        self.cost, self.input_values = appraise(
            self.limits,
            ctx.schema._schema,
            query=ctx.query,
            document=ctx.graphql_document,
            operation_name=ctx.operation_name,
            variables=ctx.variables,
        )
        context: Any = ctx.context
        earlier = 0
        if context is not None and isinstance(context.request, Request):
            # The operations of one batched HTTP request share one maximum: what the
            # request asks for, refused operations included.
            earlier = context._extra.get("cost", 0)
            context._extra["cost"] = earlier + self.cost
        refused = refusal(
            self.limits,
            anonymous=context is not None and context.actor is None,
            cost=self.cost,
            values=self.input_values,
            earlier=earlier,
        )
        if refused is not None:
            await self._spend(1)
            raise refused
        price = points(self.cost, self.input_values)
        spent = await self._spend(price)
        if spent is not None and not spent.allowed:
            raise rate_limited(spent, self.cost, self.input_values)
        yield

    def get_results(self) -> dict[str, Any]:
        """``extensions.cost`` of every answered operation."""
        if self.cost is None:
            return {}
        return cost_report(self.limits, self.cost, self.input_values, self.spent)

    async def _spend(self, amount: int) -> Spent | None:
        self.spent, charged = await spend(self.execution_context.context, amount)
        return self.spent if charged else None


# --- the pieces of the policy the prepared reads (graphql_api.prepared) share -------

_list_sizes: dict[str, int] = {}


def appraise(
    limits: Limits,
    schema: GraphQLSchema,
    *,
    query: str | None,
    document: DocumentNode,
    operation_name: str | None,
    variables: dict[str, Any] | None,
) -> tuple[int, int]:
    """(cost, input values) of an operation. For one process (one schema, one set of
    limits: graphql_api.schema builds it once) the cost is a function of the document
    text, the operation and the variables' values: kept for few variables."""
    values = input_values(variables)
    key = None
    if query and values <= COST_CACHE_MAX_INPUT_VALUES:
        try:
            encoded = orjson.dumps(variables or {}, option=orjson.OPT_SORT_KEYS)
        except TypeError:  # e.g. an integer past 64 bits: computed, not kept
            encoded = None
        if encoded is not None:
            key = (query, operation_name, encoded)
            found = _costs.get(key)
            if found is not None:
                _costs.move_to_end(key)
                return found, values
    if not _list_sizes:  # the schema's own figures, once per process
        _list_sizes.update({**LIST_SIZES, **introspection_sizes(schema)})
    cost = operation_cost(
        schema,
        document,
        operation_name=operation_name,
        variables=variables,
        default_page_size=limits.default_page_size,
        list_sizes=_list_sizes,
    )
    if key is not None:
        _costs[key] = cost
        while len(_costs) > COST_CACHE_SIZE:
            _costs.popitem(last=False)
    return cost, values


def refusal(
    limits: Limits, *, anonymous: bool, cost: int, values: int, earlier: int = 0
) -> ApiError | None:
    """Why an operation of this cost and input is refused before it runs, or None.
    ``earlier``: the cost of the same request's earlier operations."""
    if anonymous and values > limits.max_anonymous_input_values:
        return too_many_inputs(limits, values)
    if earlier + cost > limits.max_cost:
        return too_costly(limits, cost, earlier)
    return None


def too_many_inputs(limits: Limits, values: int) -> ApiError:
    cap = limits.max_anonymous_input_values
    return ApiError(
        ErrorCode.LIMIT_EXCEEDED,
        f"This operation's variables hold {values} JSON values; at most {cap} without a token",
        inputValues={"requested": values, "maximum": cap},
    )


def too_costly(limits: Limits, cost: int, earlier: int = 0) -> ApiError:
    whole = f" ({earlier} by this request's earlier operations)" if earlier else ""
    return ApiError(
        ErrorCode.LIMIT_EXCEEDED,
        f"This operation may return {cost} objects{whole}; at most"
        f" {limits.max_cost} per request (ask for smaller pages)",
        cost={"requested": earlier + cost, "maximum": limits.max_cost},
    )


def rate_limited(spent: Spent, cost: int, values: int) -> ApiError:
    price = points(cost, values)
    return ApiError(
        ErrorCode.RATE_LIMITED,
        f"The budget of {spent.limit} points per minute is spent; this operation"
        f" costs {price}. Retry in {spent.reset_seconds} s",
        cost={"requested": cost, "inputValues": values, "points": price},
        retryAfter=spent.reset_seconds,
    )


async def spend(context: Any, amount: int) -> tuple[Spent, bool]:
    """Take ``amount`` points from the caller's budget; the rate-limit headers go on the
    response. (the outcome, whether budgets are kept at all)."""
    budgets = getattr(context, "budgets", None)
    if budgets is None:
        return Spent(allowed=True, limit=0, remaining=0, reset_seconds=0), False
    spent: Spent = await budgets.spend(identity(context.actor, context.request), amount)
    response = getattr(context, "response", None)
    if isinstance(response, Response):
        for name, value in spent.headers().items():
            response.headers[name] = value
    return spent, True


def cost_report(limits: Limits, cost: int, values: int, spent: Spent | None) -> dict[str, Any]:
    found: dict[str, Any] = {"requested": cost, "maximum": limits.max_cost, "inputValues": values}
    if spent is not None and spent.limit:
        found["points"] = points(cost, values)
        found["pointsRemaining"] = spent.remaining
    return {"cost": found}


def request_policy(limits: Limits) -> type[RequestPolicy]:
    """The policy bound to this process's limits."""
    return type("BoundRequestPolicy", (RequestPolicy,), {"limits": limits})
