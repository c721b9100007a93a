"""The query root fields: lists, lookups, ``node(id:)``, and the few answered without SQL.

Roles are checked here, where the resolvers check them: a field the caller may not use
is left to its resolver, which raises the same coded error as always."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    String,
    Text,
    and_,
    case,
    func,
    literal_column,
    not_,
    select,
)
from sqlalchemy.sql import FromClause

import domain.maintenance.service  # noqa: F401  (registers the maintenance tasks)
from db import sqljson
from db.enums import TokenRole
from db.models import PeriodicTask
from db.repositories import counters
from db.repositories.batch import ORDER_KEYS, BatchOrder
from db.repositories.pagination import check_cursor
from domain.periodic.service import REGISTRY
from domain.workers.rules import DEFAULT_TIMEOUT_SECONDS
from graphql_api.compiled.connection import Connection, KeyPart, Page, id_key
from graphql_api.compiled.filters import Filter, Filters, is_, time_range
from graphql_api.compiled.selection import Field
from graphql_api.compiled.spec import (
    Bound,
    Build,
    Computed,
    Expr,
    Fallback,
    Related,
    Row,
    Scope,
    Spec,
    register,
)
from graphql_api.compiled.types_batches import JOB_FILTERS, batch_t, job_t, recipe_t
from graphql_api.compiled.types_catalog import (
    TASK_TYPE_CURSOR,
    TASK_TYPE_FILTERS,
    columns,
    datetimes,
    job_filter_arguments,
    revision_t,
    task_type_key,
    task_type_t,
    token_t,
    worker_t,
    workspace_t,
)
from graphql_api.ids import node_ints, parse_id, split_id
from graphql_api.settings import package_version

periodic_t = PeriodicTask.__table__


@dataclass(frozen=True)
class Answer:
    """A root field answered in Python (no SQL): the value the resolver would build."""

    value: Any


class Python(Spec):
    """A root field whose value comes from the request and the settings, not the database."""

    def __init__(self, target: str, make: Callable[[Scope], dict[str, Any]]) -> None:
        self.target = target
        self.make = make

    def bind(self, args: dict[str, Any], scope: Scope) -> Bound:
        return Bound(shape=("python",), data=Answer(self.make(scope)))

    def targets(self, bound: Bound | None) -> tuple[str, ...]:
        return ()


def render(type_name: str, fields: tuple[Field, ...], value: dict[str, Any]) -> dict[str, Any]:
    """A Python answer shaped by the selection (aliases, __typename, nested objects)."""
    out: dict[str, Any] = {}
    for f in fields:
        if f.name == "__typename":
            out[f.key] = type_name
            continue
        found = value[f.name]
        if isinstance(found, tuple):  # (type name, nested value)
            nested_type, nested = found
            out[f.key] = render(nested_type, f.children(nested_type), nested)
        else:
            out[f.key] = found
    return out


def _viewer(scope: Scope) -> dict[str, Any]:
    actor = scope.actor
    return {
        "authenticated": actor is not None,
        "owner": actor.owner if actor else None,
        "role": actor.role.value if actor else None,
    }


def _api_metadata(scope: Scope) -> dict[str, Any]:
    lim = scope.limits
    settings = scope.settings
    return {
        "version": package_version(),
        "documentationUrl": settings.documentation_url,
        "maintainer": settings.maintainer,
        "sourceUrl": settings.source_url,
        "limits": (
            "ApiLimits",
            {
                "maxDepth": lim.max_depth,
                "maxAliases": lim.max_aliases,
                "maxTokens": lim.max_tokens,
                "maxBatchOperations": lim.max_batch_operations,
                "maxBodyBytes": lim.max_body_bytes,
                "defaultPageSize": lim.default_page_size,
                "maxPageSize": lim.max_page_size,
            },
        ),
    }


# --- lookups ---------------------------------------------------------------------------


def _readable_batch(ctx: Build, batch_id: Expr) -> Expr:
    b = batch_t.alias(ctx.name("vb"))
    found = select(b.c.workspace_id).where(b.c.id == batch_id).correlate_except(b)
    return ctx.readable(found.scalar_subquery())


def _readable_task_type(ctx: Build, task_type_id: Expr) -> Expr:
    t = task_type_t.alias(ctx.name("vt"))
    found = select(t.c.workspace_id).where(t.c.id == task_type_id).correlate_except(t)
    return ctx.readable(found.scalar_subquery())


Visibility = Callable[[Build, FromClause], Expr]

# type name → (table, who may read a row of it, role needed)
NODES: dict[str, tuple[FromClause, Visibility, Callable[[Scope], bool]]] = {
    "Workspace": (workspace_t, lambda ctx, t: ctx.readable(t.c.id), lambda s: True),
    "TaskType": (task_type_t, lambda ctx, t: ctx.readable(t.c.workspace_id), lambda s: True),
    "TaskTypeRevision": (
        revision_t,
        lambda ctx, t: _readable_task_type(ctx, t.c.task_type_id),
        lambda s: True,
    ),
    "Batch": (batch_t, lambda ctx, t: ctx.readable(t.c.workspace_id), lambda s: True),
    "Recipe": (recipe_t, lambda ctx, t: _readable_batch(ctx, t.c.batch_id), lambda s: True),
    "Job": (job_t, lambda ctx, t: ctx.readable(t.c.workspace_id), lambda s: True),
    "Worker": (worker_t, lambda ctx, t: literal_column("true"), lambda s: s.actor is not None),
    "Token": (
        token_t,
        lambda ctx, t: literal_column("true"),
        lambda s: s.actor is not None and s.actor.role is TokenRole.ADMIN,
    ),
}


class ById(Spec):
    """``batch(id:)``, ``job(id:)`` (``only``: the one type accepted) and ``node(id:)``."""

    def __init__(self, only: str | None = None) -> None:
        self.only = only

    def bind(self, args: dict[str, Any], scope: Scope) -> Bound:
        # As the resolvers: an id that is not one, of another type, or of a type this
        # schema does not have names nothing (null).
        found = split_id(args["id"])
        if found is None or (self.only is not None and found[0] != self.only):
            return Bound(shape=("none",), data=Answer(None))
        type_name, node_id = found
        node = NODES.get(type_name)
        if node is None:  # every node type of the schema is in NODES (the differential test)
            return Bound(shape=("none",), data=Answer(None))
        if not node[2](scope):
            raise Fallback(f"node of type {type_name!r} for this caller")
        [pk] = node_ints([node_id])
        return Bound(shape=(type_name,), values=(pk,), data=type_name)

    def targets(self, bound: Bound | None) -> tuple[str, ...]:
        if bound is None or isinstance(bound.data, Answer):
            return ()
        return (bound.data,)

    def build(self, ctx: Build, f: Field, bound: Bound | None, row: Row) -> Expr:
        assert bound is not None
        table, visible, _ = NODES[bound.data]
        t = table.alias(ctx.name("n"))
        obj = ctx.object(bound.data, f.children(bound.data), Row(t.c))
        where = [t.c.id == ctx.param(bound, 0, BigInteger()), visible(ctx, t)]
        return select(obj).select_from(t).where(*where).correlate_except(t).scalar_subquery()


class ByName(Spec):
    """``workspace(name:)``, ``taskType(name:, workspace:)``, ``worker(name:)``."""

    def __init__(
        self,
        target: str,
        make: Callable[[Build, Bound], tuple[FromClause, list[Expr]]],
        values: Callable[[dict[str, Any]], tuple[Any, ...]],
        allowed: Callable[[Scope], bool] = lambda s: True,
    ) -> None:
        self.target = target
        self.make = make
        self.values = values
        self.allowed = allowed

    def bind(self, args: dict[str, Any], scope: Scope) -> Bound:
        if not self.allowed(scope):
            raise Fallback("needs a token")
        return Bound(values=self.values(args))

    def build(self, ctx: Build, f: Field, bound: Bound | None, row: Row) -> Expr:
        assert bound is not None
        assert self.target is not None
        t, where = self.make(ctx, bound)
        obj = ctx.object(self.target, f.children(self.target), Row(t.c))
        return (
            select(obj)
            .select_from(t)
            .where(*where)
            .limit(sqljson.num(1))
            .correlate_except(t)
            .scalar_subquery()
        )


def _workspace_by_name(ctx: Build, bound: Bound) -> tuple[FromClause, list[Expr]]:
    w = workspace_t.alias(ctx.name("w"))
    return w, [w.c.name == ctx.param(bound, 0, String()), ctx.readable(w.c.id)]


def _task_type_by_name(ctx: Build, bound: Bound) -> tuple[FromClause, list[Expr]]:
    t = task_type_t.alias(ctx.name("t"))
    w = workspace_t.alias(ctx.name("w"))
    workspace = (
        select(w.c.id)
        .where(w.c.name == ctx.param(bound, 1, String()), ctx.readable(w.c.id))
        .correlate_except(w)
    )
    return t, [
        t.c.workspace_id == workspace.scalar_subquery(),
        t.c.name == ctx.param(bound, 0, String()),
    ]


def _worker_by_name(ctx: Build, bound: Bound) -> tuple[FromClause, list[Expr]]:
    w = worker_t.alias(ctx.name("wk"))
    return w, [w.c.name == ctx.param(bound, 0, String())]


# --- lists -------------------------------------------------------------------------------


class RootConnection(Connection):
    """A root list: the role is checked first (the resolver raises before any SQL)."""

    def __init__(
        self, *args: Any, allowed: Callable[[Scope], bool] = lambda s: True, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.allowed = allowed

    def bind(self, args: dict[str, Any], scope: Scope) -> Bound:
        if not self.allowed(scope):
            raise Fallback("role")
        return super().bind(args, scope)


def _workspaces(ctx: Build, row: Row, bound: Bound) -> tuple[FromClause, list[Expr]]:
    w = workspace_t.alias(ctx.name("w"))
    return w, [ctx.readable(w.c.id)]


def _tokens(ctx: Build, row: Row, bound: Bound) -> tuple[FromClause, list[Expr]]:
    return token_t.alias(ctx.name("tk")), []


def _task_types(ctx: Build, row: Row, bound: Bound) -> tuple[FromClause, list[Expr]]:
    t = task_type_t.alias(ctx.name("t"))
    page: Page = bound.data
    workspace, flt = page.extra
    where = [ctx.readable(t.c.workspace_id)]
    start = page.base
    if workspace is not None:
        w = workspace_t.alias(ctx.name("w"))
        name = ctx.param(bound, start, String())
        named = select(w.c.id).where(w.c.name == name).correlate_except(w)
        where.append(t.c.workspace_id == named.scalar_subquery())
        start += 1
    where += TASK_TYPE_FILTERS.build(ctx, bound, start, t, flt)
    return t, where


def _task_type_arguments(args: dict[str, Any], scope: Scope) -> tuple[Any, Any, Any]:
    workspace = args.get("workspace")
    present, values = TASK_TYPE_FILTERS.bind(args.get("filter"))
    head = (workspace,) if workspace is not None else ()
    return (workspace is not None, present), (*head, *values), (workspace, args.get("filter"))


def _in_workspace_named(t: FromClause, name: Expr) -> Expr:
    w = workspace_t.alias("wn")
    found = select(w.c.id).where(w.c.name == name).correlate(None).scalar_subquery()
    return t.c.workspace_id == found


BATCH_FILTERS = Filters(
    Filter(lambda s: s.workspace, _in_workspace_named, String()),
    *time_range("created_after", "created_before", "created_at"),
    Filter(
        lambda s: s.task_type,
        lambda t, v: t.c.recipe.op("@>")(
            func.jsonb_build_object(
                literal_column("'nodes'"),
                func.jsonb_build_array(func.jsonb_build_object(literal_column("'taskType'"), v)),
            )
        ),
        Text(),
    ),
    is_("is_creation_done", "is_creation_done"),
    is_("is_superseded", "is_superseded"),
    Filter(
        lambda s: parse_id(s.root_batch, "Batch") if s.root_batch else None,
        lambda t, v: t.c.root_batch_id == v,
        BigInteger(),
    ),
)


def _batches(ctx: Build, row: Row, bound: Bound) -> tuple[FromClause, list[Expr]]:
    b = batch_t.alias(ctx.name("b"))
    page: Page = bound.data
    flt, _order = page.extra
    where = [ctx.readable(b.c.workspace_id)]
    return b, where + BATCH_FILTERS.build(ctx, bound, page.base, b, flt)


def _batch_arguments(args: dict[str, Any], scope: Scope) -> tuple[Any, Any, Any]:
    flt, order = args.get("filter"), args.get("order_by")
    field = order.field if order is not None else BatchOrder.ID
    descending = order is not None and order.direction.value == "DESC"
    present, values = BATCH_FILTERS.bind(flt)
    return (field.value, descending, present), values, (flt, (field, descending))


def _batch_key(t: FromClause, page: Page) -> list[KeyPart]:
    field = page.extra[1][0]
    if field is BatchOrder.ID:
        return [(t.c.id, "int", BigInteger())]
    if field is BatchOrder.TITLE:
        return [
            (func.lower(t.c.title, type_=String), "text", Text()),
            (t.c.id, "int", BigInteger()),
        ]
    # LAST_MODIFIED is the live value, as lastModifiedAt shows it and BatchRepository
    # orders by it: the batch's own edits or its jobs' newest change.
    column = (
        t.c.created_at
        if field is BatchOrder.CREATED
        else func.greatest(t.c.last_modified_at, counters.last_change(t.c.id))
    )
    return [(column, "datetime", DateTime(timezone=True)), (t.c.id, "int", BigInteger())]


def _jobs(ctx: Build, row: Row, bound: Bound) -> tuple[FromClause, list[Expr]]:
    j = job_t.alias(ctx.name("j"))
    page: Page = bound.data
    batch_id, flt = page.extra
    where = [ctx.readable(j.c.workspace_id)]
    start = page.base
    if batch_id is not None:
        where.append(j.c.batch_id == ctx.param(bound, start, BigInteger()))
        start += 1
    return j, where + JOB_FILTERS.build(ctx, bound, start, j, flt)


def _job_arguments(args: dict[str, Any], scope: Scope) -> tuple[Any, Any, Any]:
    batch = args.get("batch")
    batch_id = parse_id(batch, "Batch") if batch else None
    shape, values, flt = job_filter_arguments(args, scope)
    head = (batch_id,) if batch_id is not None else ()
    return (batch_id is not None, shape), (*head, *values), (batch_id, flt)


def _workers(ctx: Build, row: Row, bound: Bound) -> tuple[FromClause, list[Expr]]:
    w = worker_t.alias(ctx.name("wk"))
    connected = bound.data.extra
    if connected is None:
        return w, []
    # As db.repositories.worker lists them (NULLs included): heard from since the cutoff.
    cutoff = func.now() - literal_column(f"interval '{DEFAULT_TIMEOUT_SECONDS} seconds'")
    now = and_(w.c.connected_at.is_not(None), w.c.last_seen_at >= cutoff)
    return w, [now if connected else not_(now)]


def _signed_in(scope: Scope) -> bool:
    return scope.actor is not None


class SignedInList(Related):
    """A root list that needs a token (without one, the resolver refuses it)."""

    def bind(self, args: dict[str, Any], scope: Scope) -> Bound | None:
        if not _signed_in(scope):
            raise Fallback("needs a token")
        return super().bind(args, scope)


def _periodic_tasks(ctx: Build, row: Row, bound: Bound | None) -> tuple[FromClause, list[Expr]]:
    return periodic_t.alias(ctx.name("pt")), []


def _periodic_description(row: Row) -> Expr:
    """From the registry of this process's code (domain.periodic), as the resolver."""
    known = [
        (row.name == sqljson.const(name), sqljson.const(task.description))
        for name, task in sorted(REGISTRY.items())
    ]
    return case(*known, else_=sqljson.const("")) if known else sqljson.const("")


register(
    "PeriodicTask",
    {
        **columns("name", "interval_seconds", "last_outcome", "last_error", "runs", "runner"),
        **datetimes("next_run_at", "last_started_at", "last_finished_at"),
        "description": Computed(_periodic_description),
    },
)


register(
    "Query",
    {
        "viewer": Python("Viewer", _viewer),
        "apiMetadata": Python("ApiMetadata", _api_metadata),
        "batch": ById("Batch"),
        "job": ById("Job"),
        "node": ById(),
        "workspace": ByName("Workspace", _workspace_by_name, lambda a: (a["name"],)),
        "taskType": ByName("TaskType", _task_type_by_name, lambda a: (a["name"], a["workspace"])),
        "worker": ByName("Worker", _worker_by_name, lambda a: (a["name"],), allowed=_signed_in),
        "periodicTasks": SignedInList(
            "PeriodicTask", _periodic_tasks, many=True, order=lambda t: [t.c.name]
        ),
        "workspaces": RootConnection(
            "Workspace",
            _workspaces,
            lambda t, page: [(t.c.name, "text", Text())],
            check_cursor=lambda after, extra: check_cursor(after, [workspace_t.c.name]),
        ),
        "tokens": RootConnection(
            "Token",
            _tokens,
            id_key(),
            allowed=lambda s: s.actor is not None and s.actor.role is TokenRole.ADMIN,
            check_cursor=lambda after, extra: check_cursor(after, [token_t.c.id]),
        ),
        "taskTypes": RootConnection(
            "TaskType",
            _task_types,
            task_type_key,
            arguments=_task_type_arguments,
            check_cursor=lambda after, extra: check_cursor(after, TASK_TYPE_CURSOR),
        ),
        "batches": RootConnection(
            "Batch",
            _batches,
            _batch_key,
            arguments=_batch_arguments,
            descending=lambda extra: extra[1][1],
            check_cursor=lambda after, extra: check_cursor(after, ORDER_KEYS[extra[1][0]]),
        ),
        "jobs": RootConnection(
            "Job",
            _jobs,
            id_key(),
            arguments=_job_arguments,
            check_cursor=lambda after, extra: check_cursor(after, [job_t.c.id]),
        ),
        "workers": RootConnection(
            "Worker",
            _workers,
            lambda t, page: [(t.c.name, "text", Text())],
            arguments=lambda args, scope: ((args.get("connected"),), (), args.get("connected")),
            allowed=_signed_in,
            check_cursor=lambda after, extra: check_cursor(after, [worker_t.c.name]),
        ),
    },
)
