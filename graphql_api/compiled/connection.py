"""Relay connections: one bounded page read with a keyset condition, the cursors encoded by
PostgreSQL as graphql_api.relay does, ``pageInfo`` from the same page, ``totalCount``
only when selected.

SQL shape (inside whatever holds the parent row)::

    (SELECT json_build_object('edges', COALESCE(json_agg(<edge> ORDER BY p._n)
                                                FILTER (WHERE p._n <= :first), '[]'), …)
       FROM (SELECT t.*, <cursor> AS _cursor, row_number() OVER (ORDER BY <key>) AS _n
               FROM t WHERE <parent> AND <filters> AND <readable> AND <key> > :after
              ORDER BY <key> LIMIT :first + 1) AS p)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Integer,
    false,
    func,
    literal_column,
    select,
    true,
    tuple_,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.sql import FromClause
from sqlalchemy.types import TypeEngine

from db import sqljson
from db.repositories.pagination import SortKey
from graphql_api.compiled.selection import Field
from graphql_api.compiled.spec import Bound, Build, Expr, Fallback, Row, Scope, Spec, register
from graphql_api.relay import page_args

# (expression, cursor kind, SQL type of its cursor parameter) per sort key column
KeyPart = tuple[Expr, str, TypeEngine[Any]]


@dataclass(frozen=True)
class Page:
    """What a connection's arguments decided (``data`` of its Bound)."""

    first: int
    after: SortKey | None
    descending: bool
    extra: Any = None  # the connection's own arguments (filters, order)

    @property
    def base(self) -> int:
        """Where the connection's own parameters start in its Bound's values."""
        return 2 + len(self.after or ())


class Connection(Spec):
    """A connection field of ``node`` objects.

    ``source(ctx, row, bound)``: the FROM clause and conditions (filters, parent,
    visibility) without the page cut; ``key(table, page)``: the sort key;
    ``total(ctx, row, bound)``: ``totalCount`` (a count of the same source by default).
    ``arguments(args, scope)``: the connection's other arguments as (shape, values,
    extra); it raises what the resolver would (the root field then falls back).
    """

    def __init__(
        self,
        node: str,
        source: Callable[[Build, Row, Bound], tuple[FromClause, list[Expr]]],
        key: Callable[[FromClause, Page], Sequence[KeyPart]],
        *,
        arguments: Callable[[dict[str, Any], Scope], tuple[tuple[Any, ...], tuple[Any, ...], Any]]
        | None = None,
        total: Callable[[Build, Row, Bound], Expr] | None = None,
        descending: Callable[[Any], bool] = lambda extra: False,
        check_cursor: Callable[[SortKey, Any], SortKey] | None = None,
    ) -> None:
        self.node = node
        self.target = f"{node}Connection"
        self.source = source
        self.key = key
        self.arguments = arguments
        self.total = total
        self.descending = descending
        self.check_cursor = check_cursor

    def bind(self, args: dict[str, Any], scope: Scope) -> Bound:
        try:
            paging = page_args(
                args.get("first"),
                args.get("after"),
                default=scope.limits.default_page_size,
                maximum=scope.limits.max_page_size,
            )
            shape, values, extra = self.arguments(args, scope) if self.arguments else ((), (), None)
            after = paging.after
            if after is not None and self.check_cursor is not None:
                after = self.check_cursor(after, extra)
        except Exception as exc:  # the reference path raises the same: let it answer
            raise Fallback(repr(exc)) from exc
        page = Page(paging.first, after, self.descending(extra), extra)
        return Bound(
            shape=(after is not None, *shape),
            values=(page.first, page.first + 1, *(after or ()), *values),
            data=page,
        )

    def build(self, ctx: Build, f: Field, bound: Bound | None, row: Row) -> Expr:
        assert bound is not None
        page: Page = bound.data
        table, where = self.source(ctx, row, bound)
        parts = self.key(table, page)
        keys = [p[0] for p in parts]
        if page.after is not None:
            after = [ctx.param(bound, 2 + i, p[2]) for i, p in enumerate(parts)]
            position = (
                tuple_(*keys) < tuple_(*after)
                if page.descending
                else tuple_(*keys) > tuple_(*after)
            )
            where = [*where, position]
        order = [k.desc() for k in keys] if page.descending else keys
        columns: list[Any] = [table, func.row_number().over(order_by=order).label("_n")]
        if _wants_cursor(f, self.node):
            columns.append(sqljson.cursor([(p[0], p[1]) for p in parts]).label("_cursor"))
        p = (
            select(*columns)
            .where(*where)
            .order_by(*order)
            .limit(ctx.param(bound, 1, Integer()))
            .correlate_except(table)
            .subquery(ctx.name("page"))
        )
        conn = Row(
            page=p,
            first=ctx.param(bound, 0, Integer()),
            after=page.after is not None,
            total=lambda: self._total(ctx, row, bound),
            edge_of=self.node,
        )
        obj = ctx.object(self.target or "", f.children(self.target or ""), conn)
        # GROUP BY (): exactly one row, also for an empty page or only totalCount.
        return (
            select(obj)
            .select_from(p)
            .group_by(literal_column("()"))
            .correlate_except(p)
            .scalar_subquery()
        )

    def _total(self, ctx: Build, row: Row, bound: Bound) -> Expr:
        if self.total is not None:
            return self.total(ctx, row, bound)
        table, where = self.source(ctx, row, bound)
        return (
            select(func.count())
            .select_from(table)
            .where(*where)
            .correlate_except(table)
            .scalar_subquery()
        )


def _wants_cursor(f: Field, node: str) -> bool:
    for child in f.children(f"{node}Connection"):
        if child.name == "edges":
            wanted = any(e.name == "cursor" for e in child.children(f"{node}Edge"))
        elif child.name == "pageInfo":
            ends = ("startCursor", "endCursor")
            wanted = any(c.name in ends for c in child.children("PageInfo"))
        else:
            wanted = False
        if wanted:
            return True
    return False


# --- the generic connection, edge and page info types -----------------------------


class _Edges(Spec):
    def build(self, ctx: Build, f: Field, bound: Bound | None, row: Row) -> Expr:
        p = row.page
        edge_type = f"{row.edge_of}Edge"
        edge = ctx.object(edge_type, f.children(edge_type), Row(p.c, edge_of=row.edge_of))
        return sqljson.json_list(edge, order_by=[p.c._n], where=p.c._n <= row.first)


class _EdgeNode(Spec):
    def build(self, ctx: Build, f: Field, bound: Bound | None, row: Row) -> Expr:
        return ctx.object(row.edge_of, f.children(row.edge_of), row)


class _EdgeCursor(Spec):
    def build(self, ctx: Build, f: Field, bound: Bound | None, row: Row) -> Expr:
        return row._cursor


class _PageInfo(Spec):
    target = "PageInfo"

    def build(self, ctx: Build, f: Field, bound: Bound | None, row: Row) -> Expr:
        return ctx.object("PageInfo", f.children("PageInfo"), row)


class _Total(Spec):
    def build(self, ctx: Build, f: Field, bound: Bound | None, row: Row) -> Expr:
        return row.total()


def _cursor_at(row: Row, *, last: bool) -> Expr:
    p = row.page
    n = p.c._n.desc() if last else p.c._n
    agg = func.array_agg(aggregate_order_by(p.c._cursor, n)).filter(p.c._n <= row.first)
    return agg[sqljson.num(1)]


class _PageField(Spec):
    def __init__(self, make: Callable[[Row], Expr]) -> None:
        self.make = make

    def build(self, ctx: Build, f: Field, bound: Bound | None, row: Row) -> Expr:
        return self.make(row)


register(
    "PageInfo",
    {
        "hasNextPage": _PageField(lambda r: func.count() > r.first),
        "hasPreviousPage": _PageField(lambda r: true() if r.after else false()),
        "startCursor": _PageField(lambda r: _cursor_at(r, last=False)),
        "endCursor": _PageField(lambda r: _cursor_at(r, last=True)),
    },
)


def register_connection(node: str) -> None:
    """The ``<Node>Connection`` and ``<Node>Edge`` types of a node type."""
    edges = _Edges()
    edges.target = f"{node}Edge"
    register(f"{node}Connection", {"edges": edges, "pageInfo": _PageInfo(), "totalCount": _Total()})
    edge_node = _EdgeNode()
    edge_node.target = node
    register(f"{node}Edge", {"node": edge_node, "cursor": _EdgeCursor()})


def id_key(column: str = "id") -> Callable[[FromClause, Page], Sequence[KeyPart]]:
    return lambda t, page: [(t.c[column], "int", BigInteger())]
