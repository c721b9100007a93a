"""Prepared reads: a document the compiled path has answered whole, answered again
without strawberry's per-request machinery.

A query whose root fields the planner answers entirely (one statement, plus answers
it computes itself; nothing left to resolvers) has passed, for its text and the
operation name it was sent with, everything the document alone decides: the
parser's limits, the shape limits, validation (with this process's rules), the
operation rules. None of that depends on the caller or the variables. So the view
(graphql_api.view) answers the same text again directly, keeping everything that
does depend on them, through the same functions as the full way:

* authentication and the budget's door check (``get_context``);
* the cost rule and the budget (graphql_api.extensions' ``appraise`` and ``spend``);
* the plan, made per request for the caller's role and the variables' values
  (graphql_api.compiled);
* one statement; the response built and presented as the full way builds it.

Anything else — a body that is not one plain operation, a refusal, variables the
planner does not take, a field it leaves to resolvers, a statement that fails —
takes the full way, which answers it as it always does. On a simple list this is
about a third of the request's CPU (README, performance).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from graphql import DocumentNode, OperationDefinitionNode

CACHE_SIZE = 1024
_KEYS = frozenset({"query", "variables", "operationName", "extensions"})


@dataclass(frozen=True, slots=True)
class Prepared:
    document: DocumentNode
    definition: OperationDefinitionNode


@dataclass(frozen=True, slots=True)
class Ask:
    """One plain operation of a request body."""

    query: str
    operation_name: str | None
    variables: dict[str, Any] | None


class PreparedReads:
    """Per process: documents answered whole, by (text, operation name as sent)."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self._found: OrderedDict[tuple[str, str | None], Prepared] = OrderedDict()
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
        self._found[key] = Prepared(document, definition)
        while len(self._found) > self._size:
            self._found.popitem(last=False)

    def recall(self, ask: Ask) -> Prepared | None:
        return self._found.get((ask.query, ask.operation_name))

    def forget(self) -> None:
        self._found.clear()


def single_operation(body: object) -> Ask | None:
    """The body's operation when it is plainly one (``query``, optional ``variables``
    object and ``operationName``, no ``extensions``); None for anything else."""
    if not isinstance(body, dict) or not body.keys() <= _KEYS:
        return None
    query, name, variables = body.get("query"), body.get("operationName"), body.get("variables")
    if (
        not isinstance(query, str)
        or not (name is None or isinstance(name, str))
        or not (variables is None or isinstance(variables, dict))
        or body.get("extensions")
    ):
        return None
    return Ask(query, name, variables)
