"""How fields compile: the kinds of field (a column, an expression, an embedded object, a
related row or list, a connection), the registry of object types, and the two walks over
a selection: *bind* (per request: arguments checked and turned into SQL parameters, and
the statement's shape) and *build* (once per shape: SQLAlchemy Core).

A new entity registers its types here (see graphql_api/compiled/types_*.py): a table,
how a row of it becomes each field, and its visibility through ``readable``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, exists, literal_column, null, select, true
from sqlalchemy.sql import FromClause
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import TypeEngine

from db import sqljson
from db.models import Workspace
from domain.auth.rules import Actor
from graphql_api.compiled.selection import Field
from graphql_api.settings import ApiSettings, Limits

Expr = ColumnElement[Any]


class Fallback(Exception):
    """This root field goes to its resolvers (which then answer, or raise, as the
    reference does): something here does not compile, or its arguments are refused."""


@dataclass(frozen=True)
class Scope:
    """Who asks, under which limits: fixed for one request."""

    actor: Actor | None
    settings: ApiSettings

    @property
    def limits(self) -> Limits:
        return self.settings.limits

    @property
    def sees_private(self) -> bool:
        return self.actor is not None


@dataclass
class Bound:
    """A field's arguments for one request: ``values`` become SQL parameters (in this
    order), ``shape`` is whatever changes the SQL text, ``data`` is for ``build``."""

    shape: tuple[Any, ...] = ()
    values: tuple[Any, ...] = ()
    data: Any = None
    offset: int = 0


class Row:
    """What one object is built from: columns of a FROM clause, or named expressions."""

    def __init__(self, columns: Any = None, **extra: Any) -> None:
        self._columns = columns
        self._extra = extra

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        if name in self._extra:
            return self._extra[name]
        if self._columns is None:
            raise AttributeError(name)
        return self._columns[name]


class Spec:
    """How one field compiles. ``target``: the object type its sub-selection is on."""

    target: str | None = None

    def bind(self, args: dict[str, Any], scope: Scope) -> Bound | None:
        return None

    def targets(self, bound: Bound | None) -> Sequence[str]:
        return (self.target,) if self.target else ()

    def build(self, ctx: Build, f: Field, bound: Bound | None, row: Row) -> Expr:
        raise NotImplementedError


TYPES: dict[str, dict[str, Spec]] = {}


def register(type_name: str, fields: Mapping[str, Spec]) -> None:
    TYPES.setdefault(type_name, {}).update(fields)


def spec_for(type_name: str, field_name: str) -> Spec:
    found = TYPES.get(type_name, {}).get(field_name)
    if found is None:
        raise Fallback(f"{type_name}.{field_name} is not compiled")
    return found


@dataclass
class Build:
    """The build walk: Core expressions for a selection, with the bound arguments."""

    scope: Scope
    bounds: dict[int, Bound]
    aliases: int = 0

    def bound(self, f: Field) -> Bound | None:
        return self.bounds.get(id(f))

    def param(self, bound: Bound, index: int, type_: TypeEngine[Any]) -> Expr:
        return bindparam(f"p{bound.offset + index}", type_=type_)

    def name(self, prefix: str) -> str:
        self.aliases += 1
        return f"{prefix}{self.aliases}"

    def value(self, type_name: str, f: Field, row: Row) -> Expr:
        """The JSON of one field of ``type_name`` for ``row``."""
        if f.name == "__typename":
            return sqljson.const(type_name)
        spec = spec_for(type_name, f.name)
        return spec.build(self, f, self.bound(f), row)

    def object(self, type_name: str, fields: Sequence[Field], row: Row) -> Expr:
        return sqljson.json_object([(f.key, self.value(type_name, f, row)) for f in fields])

    def readable(self, workspace_id: Expr) -> Expr:
        """The workspace read scope, compiled into WHERE: everything for a token,
        public workspaces for anonymous callers (domain.auth.rules)."""
        if self.scope.sees_private:
            return true()
        w = Workspace.__table__.alias(self.name("vis"))
        found: Any = select(literal_column("1")).where(w.c.id == workspace_id, w.c.public)
        return exists(found.correlate_except(w))


# --- the walk that binds -----------------------------------------------------------


@dataclass
class Binding:
    shape: list[Any] = field(default_factory=list)
    params: list[Any] = field(default_factory=list)
    bounds: dict[int, Bound] = field(default_factory=dict)


ArgumentsOf = Callable[[Field], dict[str, Any]]


def bind(
    type_name: str, fields: Sequence[Field], scope: Scope, args: ArgumentsOf, out: Binding
) -> None:
    """Check every field's arguments, in document order, and record parameters and shape."""
    for f in fields:
        if f.name == "__typename":
            continue
        spec = spec_for(type_name, f.name)
        bound = spec.bind(args(f) if f.has_arguments or _has_defaults(f) else {}, scope)
        if bound is not None:
            bound.offset = len(out.params)
            out.params.extend(bound.values)
            out.shape.append(bound.shape)
            out.bounds[id(f)] = bound
        for target in spec.targets(bound):
            bind(target, f.children(target), scope, args, out)


def _has_defaults(f: Field) -> bool:
    return bool(f.definition.args)


# --- field kinds ---------------------------------------------------------------------


class Column(Spec):
    """A column as is (numbers, text, booleans, enums, JSONB)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def build(self, ctx: Build, f: Field, bound: Bound | None, row: Row) -> Expr:
        return getattr(row, self.name)


class DateTime(Column):
    def build(self, ctx: Build, f: Field, bound: Bound | None, row: Row) -> Expr:
        return sqljson.iso_datetime(getattr(row, self.name))


class GlobalId(Spec):
    def __init__(self, type_name: str, column: str = "id") -> None:
        self.type_name = type_name
        self.column = column

    def build(self, ctx: Build, f: Field, bound: Bound | None, row: Row) -> Expr:
        return sqljson.global_id(self.type_name, getattr(row, self.column))


class Computed(Spec):
    """An expression over the row (and the request's scope)."""

    def __init__(self, make: Callable[[Row], Expr]) -> None:
        self.make = make

    def build(self, ctx: Build, f: Field, bound: Bound | None, row: Row) -> Expr:
        return self.make(row)


class Embedded(Spec):
    """An object made of the same row (a duration, an error): null when ``missing``."""

    def __init__(
        self,
        target: str,
        make: Callable[[Row], Row] = lambda row: row,
        missing: Callable[[Row], Expr] | None = None,
    ) -> None:
        self.target = target
        self.make = make
        self.missing = missing

    def build(self, ctx: Build, f: Field, bound: Bound | None, row: Row) -> Expr:
        assert self.target is not None
        inner = self.make(row)
        obj = ctx.object(self.target, f.children(self.target), inner)
        if self.missing is None:
            return obj
        from sqlalchemy import case

        return case((self.missing(inner), null()), else_=obj)


Source = Callable[[Build, Row, Bound | None], tuple[FromClause, list[Expr]]]


class Related(Spec):
    """Rows of another type found from this one: one (null if none) or a list.

    ``source`` gives the FROM clause and the conditions (correlated to ``row``);
    ``order``: the list's order; ``limit``: a bound parameter index for lists cut short.
    """

    def __init__(
        self,
        target: str,
        source: Source,
        *,
        many: bool = False,
        order: Callable[[FromClause], list[Expr]] | None = None,
        arguments: Callable[[dict[str, Any], Scope], Bound] | None = None,
        limit: int | None = None,
    ) -> None:
        self.target = target
        self.source = source
        self.many = many
        self.order = order
        self.arguments = arguments
        self.limit = limit

    def bind(self, args: dict[str, Any], scope: Scope) -> Bound | None:
        return self.arguments(args, scope) if self.arguments else None

    def build(self, ctx: Build, f: Field, bound: Bound | None, row: Row) -> Expr:
        assert self.target is not None
        table, where = self.source(ctx, row, bound)
        fields = f.children(self.target)
        if not self.many:
            obj = ctx.object(self.target, fields, Row(table.c))
            return (
                select(obj)
                .select_from(table)
                .where(*where)
                .limit(sqljson.num(1))
                .correlate_except(table)
                .scalar_subquery()
            )
        order = self.order(table) if self.order else []
        if self.limit is not None:
            assert bound is not None
            from sqlalchemy import Integer

            cut = (
                select(table)
                .where(*where)
                .order_by(*order)
                .limit(ctx.param(bound, self.limit, Integer()))
                .correlate_except(table)
                .subquery(ctx.name("cut"))
            )
            obj = ctx.object(self.target, fields, Row(cut.c))
            order = [cut.c[c.name] for c in order]
            listed = select(sqljson.json_list(obj, order_by=order)).select_from(cut)
            return listed.correlate_except(cut).scalar_subquery()
        obj = ctx.object(self.target, fields, Row(table.c))
        return (
            select(sqljson.json_list(obj, order_by=order))
            .select_from(table)
            .where(*where)
            .correlate_except(table)
            .scalar_subquery()
        )
