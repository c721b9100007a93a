"""Where the compiled read path hooks into strawberry: at execution, after parsing,
validation and every validation rule and limit have accepted the document (so what is
refused today is still refused before any SQL).

For a query, the root fields that compile are answered by one SQL statement whose JSON
goes into the response as text; the others run through strawberry's executor, on a
copy of the document holding only them, and the two halves are merged in the order of
the document. ``Context.compiled_reads = False`` (or ``BATCHGRAPH_COMPILED_READS=false``)
sends everything to the resolvers: the reference the planner is tested against.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from graphql import (
    DocumentNode,
    ExecutionResult,
    FieldNode,
    OperationDefinitionNode,
    SelectionSetNode,
)
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from graphql_api.compiled.planner import Plan, Planner
from graphql_api.compiled.spec import Scope
from graphql_api.prepared import PreparedReads


class CompiledReads(SchemaExtension):
    planner: Planner | None = None  # one per process (set by ``compiled_reads``)
    prepared: PreparedReads | None = None  # documents answered whole (graphql_api.prepared)

    async def on_execute(self) -> AsyncIterator[None]:
        ctx = self.execution_context
        context: Any = ctx.context
        plan = None
        if (
            getattr(context, "compiled_reads", False)
            and ctx.operation_type is OperationType.QUERY
            and self.planner is not None
        ):
            plan = self._plan()
        context_report(context, plan)
        if plan is None or (not plan.compiled and not plan.answers):
            yield
            return
        texts: dict[str, Any] | None = {}
        if plan.compiled:
            texts = await self.planner.texts(  # type: ignore[union-attr]
                context.db, plan, context.read_pool, context.settings.db_pool_timeout_seconds
            )
        if plan.whole:
            ctx.result = ExecutionResult(data=plan.data(texts or {}), errors=None)
            self._prepare()
            yield
            return
        original = ctx.graphql_document
        ctx.graphql_document = _only(ctx.graphql_document, ctx.operation_name, plan)
        try:
            yield
        finally:
            ctx.graphql_document = original
        result = ctx.result
        if result is not None and result.data is not None:
            result.data = plan.data(texts or {}, result.data)

    def _prepare(self) -> None:
        """Answered whole: the view may answer this text again directly."""
        ctx = self.execution_context
        definition = _operation(ctx.graphql_document, ctx.operation_name)
        if (
            self.prepared is not None
            and ctx.query
            and ctx.graphql_document is not None
            and definition is not None
        ):
            self.prepared.remember(
                ctx.query, ctx._provided_operation_name, ctx.graphql_document, definition
            )

    def _plan(self) -> Plan | None:
        ctx = self.execution_context
        context: Any = ctx.context
        document = ctx.graphql_document
        definition = _operation(document, ctx.operation_name)
        if definition is None or ctx.query is None:
            return None
        assert self.planner is not None
        return self.planner.plan_safely(
            query=ctx.query,
            document=document,
            definition=definition,
            operation_name=ctx.operation_name,
            raw_variables=ctx.variables,
            scope=Scope(actor=context.actor, settings=context.settings),
        )


def compiled_reads(
    planner: Planner | None, prepared: PreparedReads | None = None
) -> type[CompiledReads]:
    return type("BoundCompiledReads", (CompiledReads,), {"planner": planner, "prepared": prepared})


def context_report(context: Any, plan: Plan | None) -> None:
    """What was compiled, for tests and debugging (``context.compiled_plan``)."""
    if context is not None and hasattr(context, "compiled_plan"):
        context.compiled_plan = plan


def _operation(document: DocumentNode | None, name: str | None) -> OperationDefinitionNode | None:
    if document is None:
        return None
    found = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if name is None:
        return found[0] if len(found) == 1 else None
    return next((d for d in found if d.name is not None and d.name.value == name), None)


def _only(document: DocumentNode | None, name: str | None, plan: Plan) -> DocumentNode:
    """The document with its operation reduced to the root fields left to the resolvers."""
    assert document is not None
    definition = _operation(document, name)
    assert definition is not None
    nodes: list[FieldNode] = [node for f in plan.fallback for node in f.nodes]
    reduced = OperationDefinitionNode(
        operation=definition.operation,
        name=definition.name,
        variable_definitions=definition.variable_definitions,
        directives=definition.directives,
        selection_set=SelectionSetNode(selections=tuple(nodes)),
    )
    definitions = tuple(reduced if d is definition else d for d in document.definitions)
    return DocumentNode(definitions=definitions)
