"""From a validated query to one SQL statement (for every compiled root field at once),
cached per document, operation and shape; then run on the read pool.

Per request: variables coerced, each root field's arguments checked and turned into
parameters (the *bind* walk), the statement looked up by its shape. Only a new shape
builds SQLAlchemy Core and compiles it. A root field that does not compile, or whose
arguments the resolver would refuse, is left to the resolvers (``fallback``).
"""

from __future__ import annotations

import logging
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from graphql import GraphQLError, OperationDefinitionNode
from graphql.execution.values import VariableValues, get_argument_values, get_variable_values
from sqlalchemy import Text, cast, select
from sqlalchemy.dialects.postgresql import asyncpg as asyncpg_dialect
from strawberry.types.arguments import convert_arguments

from db.errors import is_pool_timeout
from db.rawpool import acquired
from db.session import Database
from graphql_api.compiled import roots, types_batches, types_catalog  # noqa: F401 (registers)
from graphql_api.compiled.roots import Answer, render
from graphql_api.compiled.selection import Field, Operation, Unsupported
from graphql_api.compiled.spec import Binding, Build, Fallback, Row, Scope, bind, spec_for
from graphql_api.jsonenc import RawJSON

log = logging.getLogger(__name__)
DIALECT = asyncpg_dialect.dialect()  # type: ignore[no-untyped-call]
MAX_OPERATIONS = 1024
MAX_STATEMENTS = 4096

# Called with every statement the compiled path sends (tests count them).
STATEMENT_HOOKS: list[Callable[[str], None]] = []


@dataclass(frozen=True)
class Statement:
    sql: str
    order: tuple[int, ...]  # parameter indexes, in the statement's $n order


@dataclass
class Plan:
    """One request's plan: root fields compiled, answered in Python, or left to resolvers."""

    fields: tuple[Field, ...]
    compiled: list[Field] = field(default_factory=list)
    answers: dict[str, Any] = field(default_factory=dict)
    fallback: list[Field] = field(default_factory=list)
    reasons: dict[str, str] = field(default_factory=dict)
    statement: Statement | None = None
    params: list[Any] = field(default_factory=list)

    @property
    def whole(self) -> bool:
        """Answered without any resolver: a statement and/or answers computed here."""
        return not self.fallback and bool(self.compiled or self.answers)

    def data(self, texts: dict[str, Any], resolved: dict[str, Any] | None = None) -> dict[str, Any]:
        """The answer's data in the order of the document: the Python answers, the
        statement's JSON texts (passed through as they are) and what resolvers gave."""
        found: dict[str, Any] = dict(self.answers)
        found |= {k: RawJSON(v) if v is not None else None for k, v in texts.items()}
        found |= resolved or {}
        return {f.key: found.get(f.key) for f in self.fields}

    def copy(self) -> Plan:
        """A copy whose lists a request may change (a failed statement moves fields)."""
        return Plan(
            self.fields,
            list(self.compiled),
            dict(self.answers),
            list(self.fallback),
            dict(self.reasons),
            self.statement,
            self.params,
        )


class Planner:
    """Per process: the schema, the caches of operations and of compiled statements."""

    def __init__(self, schema: Any) -> None:
        self.schema = schema  # strawberry.Schema
        self.graphql = schema._schema
        self.operations: OrderedDict[tuple[str, str | None], Operation] = OrderedDict()
        self.statements: OrderedDict[tuple[Any, ...], Statement] = OrderedDict()
        # Root field names compiled / left to resolvers, since start (tests, debugging).
        self.stats: dict[str, Counter[str]] = {
            "compiled": Counter(),
            "fallback": Counter(),
            "failed": Counter(),  # compiled, but the statement failed: resolvers answered
        }
        self.last_failure = ""
        # Documents without variables plan the same way every time for the same kind of
        # caller: their plans are kept (without Python answers, which name the caller).
        self.fixed: OrderedDict[tuple[Any, ...], Plan] = OrderedDict()

    # --- planning --------------------------------------------------------------------

    def plan(
        self,
        *,
        query: str,
        document: Any,
        definition: OperationDefinitionNode,
        operation_name: str | None,
        raw_variables: dict[str, Any] | None,
        scope: Scope,
    ) -> Plan | None:
        """None: nothing to compile here (the resolvers answer, and report any error)."""
        fixed_key = None
        if not definition.variable_definitions:
            role = scope.actor.role if scope.actor is not None else None
            fixed_key = (query, operation_name, role)
            found = self.fixed.get(fixed_key)
            if found is not None:
                self.stats["compiled"].update(f.name for f in found.compiled)
                return found.copy()
        plan = self._plan(query, document, definition, operation_name, raw_variables, scope)
        if fixed_key is not None and plan is not None and not plan.answers:
            self.fixed[fixed_key] = plan.copy()
            if len(self.fixed) > MAX_OPERATIONS:
                self.fixed.popitem(last=False)
        return plan

    def _plan(
        self,
        query: str,
        document: Any,
        definition: OperationDefinitionNode,
        operation_name: str | None,
        raw_variables: dict[str, Any] | None,
        scope: Scope,
    ) -> Plan | None:
        operation = self._operation(query, operation_name, document, definition)
        variables = get_variable_values(
            self.graphql, definition.variable_definitions or (), raw_variables or {}
        )
        if not isinstance(variables, VariableValues):
            return None  # the resolvers report the variable errors
        signature, fields = operation.root_fields(self.graphql, variables)
        plan = Plan(fields)
        binding = Binding()
        shape: list[Any] = [signature, scope.sees_private]
        for f in fields:
            if f.name == "__typename":
                plan.answers[f.key] = "Query"
                continue
            mark = (len(binding.params), len(binding.shape), dict(binding.bounds))
            try:
                spec = spec_for("Query", f.name)
                bound = spec.bind(self._arguments(f, variables), scope)
                if bound is not None and isinstance(bound.data, Answer):
                    value = bound.data.value
                    if spec.target is not None and isinstance(value, dict):
                        value = render(spec.target, f.children(spec.target), value)
                    plan.answers[f.key] = value
                    self.stats["compiled"][f.name] += 1
                    continue
                if bound is not None:
                    bound.offset = len(binding.params)
                    binding.params.extend(bound.values)
                    binding.shape.append(bound.shape)
                    binding.bounds[id(f)] = bound
                for target in spec.targets(bound):
                    bind(
                        target, f.children(target), scope, self._argument_reader(variables), binding
                    )
            except (Fallback, Unsupported) as exc:
                del binding.params[mark[0] :]
                del binding.shape[mark[1] :]
                binding.bounds = mark[2]
                plan.fallback.append(f)
                plan.reasons[f.key] = str(exc)
                self.stats["fallback"][f.name] += 1
                continue
            plan.compiled.append(f)
            self.stats["compiled"][f.name] += 1
            shape.append((f.key, len(binding.shape)))
        if plan.compiled:
            key = (query, operation_name, tuple(shape), tuple(binding.shape))
            plan.statement = self._statement(key, plan.compiled, binding, scope)
            plan.params = binding.params
        return plan

    def _operation(
        self, query: str, name: str | None, document: Any, definition: OperationDefinitionNode
    ) -> Operation:
        key = (query, name)
        found = self.operations.get(key)
        if found is None:
            found = Operation.of(document, definition)
            self.operations[key] = found
            if len(self.operations) > MAX_OPERATIONS:
                self.operations.popitem(last=False)
        return found

    def _argument_reader(self, variables: VariableValues) -> Callable[[Field], dict[str, Any]]:
        return lambda f: self._arguments(f, variables)

    def _arguments(self, f: Field, variables: VariableValues) -> dict[str, Any]:
        """The field's arguments as its resolver receives them (strawberry's conversion)."""
        if not f.definition.args:
            return {}
        try:
            raw = get_argument_values(f.definition, f.nodes[0], variables)
            strawberry_field = f.definition.extensions["strawberry-definition"]
            return convert_arguments(
                raw,
                strawberry_field.arguments,
                scalar_registry=self.schema.schema_converter.scalar_registry,
                config=self.schema.config,
            )
        except (GraphQLError, ValueError, TypeError, KeyError) as exc:
            raise Fallback(f"arguments of {f.name}: {exc!r}") from exc

    def _statement(
        self, key: tuple[Any, ...], compiled: list[Field], binding: Binding, scope: Scope
    ) -> Statement:
        found = self.statements.get(key)
        if found is not None:
            self.statements.move_to_end(key)
            return found
        ctx = Build(scope, binding.bounds)
        columns = []
        for i, f in enumerate(compiled):
            expr = spec_for("Query", f.name).build(ctx, f, binding.bounds.get(id(f)), Row())
            columns.append(cast(expr, Text).label(f"r{i}"))
        compiled_sql = select(*columns).compile(dialect=DIALECT)
        names = list(compiled_sql.positiontup or ())
        if any(not (n.startswith("p") and n[1:].isdigit()) for n in names):
            raise RuntimeError(f"an unbound constant in {compiled_sql.string}")  # a bug here
        order = tuple(int(name[1:]) for name in names)
        found = Statement(compiled_sql.string, order)
        self.statements[key] = found
        if len(self.statements) > MAX_STATEMENTS:
            self.statements.popitem(last=False)
        return found

    # --- running ---------------------------------------------------------------------

    def plan_safely(self, **arguments: Any) -> Plan | None:
        """``plan``, where a bug of the planner costs no answer: logged and counted like
        a failed statement (the differential test sees it); None, the resolvers answer."""
        try:
            return self.plan(**arguments)
        except Exception as exc:
            log.exception("query planning failed; the resolvers answer")
            self.stats["failed"]["(planning)"] += 1
            self.last_failure = f"planning: {exc!r}"
            return None

    async def texts(
        self,
        db: Database,
        plan: Plan,
        pool: asyncpg.Pool | None = None,
        wait_seconds: float | None = None,
    ) -> dict[str, Any] | None:
        """``run``, where a failed statement (e.g. a value the driver refuses) is
        recorded and its fields move to the plan's fallback: None, the resolvers decide.
        No free connection in time is raised: the resolvers would only wait again."""
        try:
            return await self.run(db, plan, pool, wait_seconds)
        except Exception as exc:
            if is_pool_timeout(exc):
                raise
            log.debug("compiled read failed; the resolvers answer", exc_info=True)
            plan.reasons |= {f.key: f"at run time: {exc!r}" for f in plan.compiled}
            self.stats["failed"].update(f.name for f in plan.compiled)
            self.last_failure = f"{exc!r} in {plan.statement}"
            plan.fallback += plan.compiled
            plan.compiled = []
            return None

    async def run(
        self,
        db: Database,
        plan: Plan,
        pool: asyncpg.Pool | None = None,
        wait_seconds: float | None = None,
    ) -> dict[str, Any]:
        """Response keys → JSON text (or None) of the compiled root fields."""
        statement = plan.statement
        assert statement is not None
        args = [plan.params[i] for i in statement.order]
        for hook in STATEMENT_HOOKS:
            hook(statement.sql)
        if pool is not None:
            async with acquired(pool, wait_seconds) as connection:
                row = await connection.fetchrow(statement.sql, *args)
        else:  # no lifespan ran (an app in tests): the engine's pool
            async with db.engine.connect() as conn:
                raw = await conn.get_raw_connection()
                row = await raw.driver_connection.fetchrow(statement.sql, *args)  # type: ignore[union-attr]
        return {f.key: row[i] for i, f in enumerate(plan.compiled)}
