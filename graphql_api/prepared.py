"""Prepared reads: a document the compiled path has answered whole, answered again
without strawberry's per-request machinery. (Prepared as a document is: not an SQL
prepared statement.)

A query whose root fields the planner answers entirely (one statement, plus answers
it computes itself; nothing left to resolvers) has passed, for its text and the
operation name it was sent with, every gate the document alone decides: the parser's
limits, the shape limits, validation (with this process's rules, which do not vary by
caller), the operation rules. So the view (graphql_api.view) answers the same text
again directly, passing every gate that depends on the caller or the variables
through the same functions as the full way:

* authentication and the budget's door check (the view's ``get_context``), before
  the body is read;
* the cost rule and the budget (graphql_api.extensions' ``appraise``, ``refusal``,
  ``spend``);
* the plan, made per request for the caller's role and the variables' values
  (graphql_api.compiled), and its statement;
* the response, presented and built as the full way builds it.

Anything else — a body that is not one plain operation, a refusal, variables the
planner does not take, a field it leaves to resolvers, a statement that fails — takes
the full way, which answers it as it always does (a statement that fails runs again
there, and its points are charged again: a rare case). On a simple list this saves
about a third of the request's CPU (README: Performance, Reads and subscriptions).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from graphql import DocumentNode, OperationDefinitionNode
from strawberry.types import ExecutionResult

from graphql_api.compiled.planner import Planner
from graphql_api.compiled.spec import Scope
from graphql_api.context import Context
from graphql_api.errors import present
from graphql_api.extensions import appraise, cost_report, rate_limited, refusal, spend
from graphql_api.ratelimit import points

CACHE_SIZE = 1024
_KEYS = frozenset({"query", "variables", "operationName", "extensions"})


@dataclass(frozen=True, slots=True)
class KnownDocument:
    document: DocumentNode
    definition: OperationDefinitionNode


@dataclass(frozen=True, slots=True)
class PlainOperation:
    """The one operation of a request body."""

    query: str
    operation_name: str | None
    variables: dict[str, Any] | None


class PreparedReads:
    """Per process: documents answered whole, by (text, operation name as sent)."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self._found: OrderedDict[tuple[str, str | None], KnownDocument] = OrderedDict()
        self._size = size
        self.answered = 0  # requests answered this way since start (tests, debugging)

    def remember(
        self,
        query: str,
        operation_name: str | None,
        document: DocumentNode,
        definition: OperationDefinitionNode,
    ) -> None:
        key = (query, operation_name)
        if key in self._found:
            self._found.move_to_end(key)
            return
        self._found[key] = KnownDocument(document, definition)
        while len(self._found) > self._size:
            self._found.popitem(last=False)

    def recall(self, operation: PlainOperation) -> KnownDocument | None:
        return self._found.get((operation.query, operation.operation_name))


def single_operation(body: object) -> PlainOperation | None:
    """The body's operation when it is plainly one (``query``, optional ``variables``
    object and ``operationName``, ``extensions`` absent, null or empty); None for
    anything else."""
    if not isinstance(body, dict) or not body.keys() <= _KEYS:
        return None
    query, name, variables = body.get("query"), body.get("operationName"), body.get("variables")
    if (
        not isinstance(query, str)
        or not (name is None or isinstance(name, str))
        or not (variables is None or isinstance(variables, dict))
        or body.get("extensions") not in (None, {})  # `[]`, `0`, `""` are refused there
    ):
        return None
    return PlainOperation(query, name, variables)


async def execute(
    planner: Planner, known: KnownDocument, operation: PlainOperation, context: Context
) -> ExecutionResult | None:
    """The answer to a known document for this caller and these variables, or None:
    the full way answers (see the module's docstring)."""
    limits = context.settings.limits
    cost, values = appraise(
        limits,
        planner.graphql,
        query=operation.query,
        document=known.document,
        operation_name=operation.operation_name,
        variables=operation.variables,
    )
    if refusal(limits, anonymous=context.actor is None, cost=cost, values=values) is not None:
        return None  # refused the full way, in its words, at its price
    plan = planner.plan_safely(
        query=operation.query,
        document=known.document,
        definition=known.definition,
        operation_name=operation.operation_name,
        raw_variables=operation.variables,
        scope=Scope(actor=context.actor, settings=context.settings),
    )
    if plan is None or not plan.whole:
        return None
    spent, _ = await spend(context, points(cost, values))
    result = ExecutionResult(
        data=None, errors=None, extensions=cost_report(limits, cost, values, spent)
    )
    if not spent.allowed:
        result.errors = [present(rate_limited(spent, cost, values), context.request_id)]
        return result
    timeout = context.settings.db_pool_timeout_seconds
    texts = (
        await planner.texts(context.db, plan, context.read_pool, timeout) if plan.compiled else {}
    )
    if texts is None:
        return None
    context.compiled_plan = plan
    result.data = plan.data(texts)
    return result
