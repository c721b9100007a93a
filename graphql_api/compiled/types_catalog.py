"""Workspaces, task types and their revisions, tokens, workers: how their fields compile."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Integer,
    Text,
    and_,
    case,
    cast,
    exists,
    false,
    func,
    literal_column,
    not_,
    null,
    select,
)
from sqlalchemy.sql import FromClause

from db import sqljson
from db.enums import JobStatus, WorkerKind
from db.models import Job, TaskType, TaskTypeRevision, Token, Worker, Workspace
from db.repositories.pagination import check_cursor
from domain.workers.rules import (
    BLOCKED_REASON,
    DEFAULT_TIMEOUT_SECONDS,
    EXTERNAL,
    NO_PULL_WORKER,
    NO_WORKER_MEETS,
    PENDING_REASON,
)
from graphql_api.compiled.connection import Connection, Page, id_key, register_connection
from graphql_api.compiled.filters import Filter, Filters, is_
from graphql_api.compiled.spec import (
    Bound,
    Build,
    Column,
    Computed,
    DateTime,
    Expr,
    Fallback,
    GlobalId,
    Related,
    Row,
    Scope,
    register,
)
from graphql_api.relay import page_args

workspace_t = Workspace.__table__
task_type_t = TaskType.__table__
revision_t = TaskTypeRevision.__table__
token_t = Token.__table__
worker_t = Worker.__table__
job_t = Job.__table__


def columns(*names: str) -> dict[str, Any]:
    return {_camel(n): Column(n) for n in names}


def datetimes(*names: str) -> dict[str, Any]:
    return {_camel(n): DateTime(n) for n in names}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


def by_id(table: FromClause, column: str) -> Any:
    """A related row whose id is ``column`` of this row."""

    def source(ctx: Build, row: Row, bound: Bound | None) -> tuple[FromClause, list[Expr]]:
        t = table.alias(ctx.name(table.name[:2]))  # type: ignore[attr-defined]
        return t, [t.c.id == getattr(row, column)]

    return source


# --- workspaces ----------------------------------------------------------------------


def _workspace_task_types(ctx: Build, row: Row, bound: Bound) -> tuple[FromClause, list[Expr]]:
    t = task_type_t.alias(ctx.name("tt"))
    page: Page = bound.data
    where = [t.c.workspace_id == row.id, ctx.readable(t.c.workspace_id)]
    where += TASK_TYPE_FILTERS.build(ctx, bound, page.base, t, page.extra)
    return t, where


def task_type_arguments(args: dict[str, Any], scope: Scope) -> tuple[Any, Any, Any]:
    present, values = TASK_TYPE_FILTERS.bind(args.get("filter"))
    return present, values, args.get("filter")


def _escape_like(value: str) -> str:
    return "%" + value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


TASK_TYPE_FILTERS = Filters(
    is_("available", "available"),
    Filter(
        lambda s: s.name_contains or None,  # an empty string filters nothing
        lambda t, v: t.c.name.ilike(v, escape="\\"),
        Text(),
        _escape_like,
    ),
)


def task_type_key(t: FromClause, page: Page) -> list[Any]:
    return [(t.c.name, "text", Text()), (t.c.id, "int", BigInteger())]


TASK_TYPE_CURSOR = [TaskType.name, TaskType.id]

register(
    "Workspace",
    {
        "id": GlobalId("Workspace"),
        **columns("name", "public"),
        **datetimes("created_at"),
        "taskTypes": Connection(
            "TaskType",
            _workspace_task_types,
            task_type_key,
            arguments=task_type_arguments,
            check_cursor=lambda after, extra: check_cursor(after, TASK_TYPE_CURSOR),
        ),
    },
)
register_connection("Workspace")

# --- task types and revisions --------------------------------------------------------


def _revision_by_number(ctx: Build, row: Row, bound: Bound | None) -> tuple[FromClause, list[Expr]]:
    r = revision_t.alias(ctx.name("rv"))
    number = ctx.param(bound, 0, Integer()) if bound is not None else row.latest_revision
    return r, [r.c.task_type_id == row.id, r.c.revision == number]


def _number(args: dict[str, Any], scope: Scope) -> Bound:
    return Bound(values=(args["number"],))


def _queue(ctx: Build, row: Row, bound: Bound | None) -> tuple[FromClause, list[Expr]]:
    j = job_t.alias(ctx.name("q"))
    r = revision_t.alias(ctx.name("qr"))
    of_task_type = select(r.c.id).where(r.c.task_type_id == row.id).correlate_except(r)
    waiting = j.c.status.in_([literal_column(f"'{s.value}'") for s in _WAITING])
    return j, [j.c.task_type_revision_id.in_(of_task_type), waiting]


_WAITING = (JobStatus.PENDING, JobStatus.QUEUED)


def _queue_arguments(args: dict[str, Any], scope: Scope) -> Bound:
    try:
        found = page_args(args.get("first"), None, default=20, maximum=scope.limits.max_page_size)
    except Exception as exc:
        raise Fallback(repr(exc)) from exc
    return Bound(values=(found.first,))


def _revisions(ctx: Build, row: Row, bound: Bound) -> tuple[FromClause, list[Expr]]:
    r = revision_t.alias(ctx.name("rv"))
    return r, [r.c.task_type_id == row.id]


def _has_timed_out(row: Row) -> Expr:
    """domain.tasktypes.rules.has_timed_out: strictly more than the timeout since the last
    check-in (or since creation)."""
    since = func.coalesce(row.last_check_in_at, row.created_at)
    return func.now() - since > row.check_in_timeout_seconds * literal_column("interval '1 second'")


register(
    "TaskType",
    {
        "id": GlobalId("TaskType"),
        **columns("name", "available", "check_in_timeout_seconds", "latest_revision"),
        **datetimes("last_check_in_at", "created_at"),
        "workspace": Related("Workspace", by_id(workspace_t, "workspace_id")),
        "hasTimedOut": Computed(_has_timed_out),
        "currentRevision": Related("TaskTypeRevision", _revision_by_number),
        "revision": Related("TaskTypeRevision", _revision_by_number, arguments=_number),
        "queue": Related(
            "Job",
            _queue,
            many=True,
            order=lambda j: [j.c.created_at, j.c.id],
            arguments=_queue_arguments,
            limit=0,
        ),
        "revisions": Connection(
            "TaskTypeRevision",
            _revisions,
            lambda t, page: [(t.c.revision, "int", Integer())],
            check_cursor=lambda after, extra: check_cursor(after, [TaskTypeRevision.revision]),
        ),
    },
)
register_connection("TaskType")

register(
    "TaskTypeRevision",
    {
        "id": GlobalId("TaskTypeRevision"),
        **columns(
            "revision",
            "description",
            "parameters_schema",
            "result_schema",
            "implementation",
            "timeout_seconds",
            "max_attempts",
            "cache_policy",
            "requirements",
            "created_by",
        ),
        **datetimes("created_at"),
        "taskType": Related("TaskType", by_id(task_type_t, "task_type_id")),
    },
)
register_connection("TaskTypeRevision")

# --- tokens and workers (no workspace: the role decides, at the root) ---------------

register(
    "Token",
    {
        "id": GlobalId("Token"),
        **columns("owner", "role", "prefix", "enabled"),
        **datetimes("expires_at", "last_used_at", "created_at"),
    },
)
register_connection("Token")


def connected_now(t: Any) -> Expr:
    """domain.workers.rules.is_connected: heard from within the timeout (not strictly past)."""
    cutoff = func.now() - literal_column(f"interval '{DEFAULT_TIMEOUT_SECONDS} seconds'")
    return and_(t.connected_at.is_not(None), t.last_seen_at.is_not(None), t.last_seen_at >= cutoff)


def _token_enabled(row: Row) -> Expr:
    k = token_t.alias("te")
    return select(k.c.enabled).where(k.c.id == row.token_id).correlate_except(k).scalar_subquery()


def _worker_jobs(ctx: Build, row: Row, bound: Bound) -> tuple[FromClause, list[Expr]]:
    from graphql_api.compiled.types_batches import JOB_FILTERS

    j = job_t.alias(ctx.name("wj"))
    page: Page = bound.data
    where = [j.c.worker == row.name]
    where += JOB_FILTERS.build(ctx, bound, page.base, j, page.extra)
    return j, where


def job_filter_arguments(args: dict[str, Any], scope: Scope) -> tuple[Any, Any, Any]:
    from graphql_api.compiled.types_batches import JOB_FILTERS

    present, values = JOB_FILTERS.bind(args.get("filter"))
    return present, values, args.get("filter")


register(
    "Worker",
    {
        "id": GlobalId("Worker"),
        **columns(
            "name", "kind", "host", "concurrency", "enabled", "static_metadata", "dynamic_metadata"
        ),
        **datetimes("registered_at", "connected_at", "last_seen_at", "disconnected_at", "lost_at"),
        "isConnected": Computed(lambda row: connected_now(row)),
        "tokenId": GlobalId("Token", "token_id"),
        "isTokenEnabled": Computed(_token_enabled),
        # Static wins on conflicts: dynamic || static (domain.workers.rules.metadata).
        "metadata": Computed(lambda row: row.dynamic_metadata.op("||")(row.static_metadata)),
        "jobs": Connection(
            "Job",
            _worker_jobs,
            id_key(),
            arguments=job_filter_arguments,
            check_cursor=lambda after, extra: check_cursor(after, [Job.id]),
        ),
    },
)
register_connection("Worker")


# --- why a job waits (domain.workers.rules.waiting_reason, in SQL) -----------------------


def waiting_reason(row: Row) -> Expr:
    """``Job.waitingReason``: the rule of domain.workers.rules over the connected workers
    (the differential test holds the two to the same answers)."""
    r = revision_t.alias("wr_r")
    t = task_type_t.alias("wr_t")
    w = worker_t.alias("wr_w")
    k = token_t.alias("wr_k")
    meta = w.c.dynamic_metadata.op("||")(w.c.static_metadata)

    def listed(key: str, value: Expr) -> Expr:
        found = meta.op("->")(sqljson.const(key))
        # A missing list is not listed (false, never NULL: NOT NULL would stay NULL).
        is_list = func.coalesce(func.jsonb_typeof(found) == sqljson.const("array"), false())
        return and_(is_list, found.op("?")(value))

    pull = and_(
        w.c.kind == sqljson.const(WorkerKind.EXTERNAL.value),
        k.c.enabled.is_not(False),
        case(
            (func.jsonb_typeof(meta.op("->")(sqljson.const("tasks_allowlist")))
             == sqljson.const("array"),
             listed("tasks_allowlist", t.c.name)),
            else_=not_(listed("tasks_denylist", t.c.name)),
        ),
    )  # fmt: skip
    fleet = and_(
        w.c.kind == sqljson.const(WorkerKind.FLEET.value),
        listed("implementations", r.c.implementation),
    )
    someone = exists(
        select(literal_column("1"))
        .select_from(w.outerjoin(k, k.c.id == w.c.token_id))
        .where(
            connected_now(w.c),
            w.c.enabled,
            meta.op("@>")(r.c.requirements),
            case((r.c.implementation == sqljson.const(EXTERNAL), pull), else_=fleet),
        )
        .correlate(r, t)
    )
    queued = (
        select(
            case(
                (someone, null()),
                (r.c.requirements != literal_column("'{}'::jsonb"), sqljson.const(NO_WORKER_MEETS)),
                (r.c.implementation == sqljson.const(EXTERNAL), sqljson.const(NO_PULL_WORKER)),
                else_=sqljson.const("no connected fleet worker has the implementation '")
                .op("||")(r.c.implementation)
                .op("||")(sqljson.const("'")),
            )
        )
        .select_from(r.join(t, t.c.id == r.c.task_type_id))
        .where(r.c.id == row.task_type_revision_id)
        .correlate_except(r, t)
        .scalar_subquery()
    )
    status = cast(row.status, Text)
    return case(
        (status == sqljson.const("BLOCKED"), sqljson.const(BLOCKED_REASON)),
        (status == sqljson.const("PENDING"), sqljson.const(PENDING_REASON)),
        (status == sqljson.const("QUEUED"), queued),
        else_=null(),
    )
