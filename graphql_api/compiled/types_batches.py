"""Batches, recipes, per-node metrics and counters, jobs and their events: how they compile."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Float,
    Text,
    any_,
    cast,
    func,
    literal_column,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql import FromClause

from db import sqljson
from db.enums import JobStatus
from db.models import Batch, Job, JobDependency, JobEvent, Recipe
from db.models.job import JOB_STATUS
from db.repositories import counters
from db.repositories.batch import NODE_COUNTERS
from db.repositories.pagination import check_cursor
from graphql_api.compiled.connection import Connection, Page, id_key, register_connection
from graphql_api.compiled.filters import Filter, Filters, text_equals, time_range
from graphql_api.compiled.spec import (
    Bound,
    Build,
    Column,
    Computed,
    DateTime,
    Embedded,
    Expr,
    GlobalId,
    Related,
    Row,
    register,
)
from graphql_api.compiled.types_catalog import (
    by_id,
    columns,
    datetimes,
    job_filter_arguments,
    revision_t,
    task_type_t,
    waiting_reason,
    workspace_t,
)

batch_t = Batch.__table__
recipe_t = Recipe.__table__
job_t = Job.__table__
event_t = JobEvent.__table__
dependency_t = JobDependency.__table__
STATUS_COLUMNS = [s.value.lower() for s in JobStatus]

# --- durations -----------------------------------------------------------------------

register(
    "Duration",
    {
        "seconds": Computed(lambda row: row.seconds),
        "iso": Computed(lambda row: sqljson.iso_duration(row.seconds)),
    },
)


def duration(seconds: Any) -> Embedded:
    """A Duration of ``seconds(row)``; null when that is null."""
    return Embedded(
        "Duration", lambda row: Row(seconds=seconds(row)), lambda r: r.seconds.is_(None)
    )


register(
    "DurationStats",
    {
        "count": Computed(lambda r: r.count),
        "min": duration(lambda r: r.low),
        "avg": duration(lambda r: r.mean),
        "max": duration(lambda r: r.high),
        "p50": duration(lambda r: r.p50),
        "p95": duration(lambda r: r.p95),
    },
)


def stats(prefix: str) -> Embedded:
    """domain.metrics.rules.duration_stats: all null while no job has the duration
    (the percentiles are over the same jobs, so null then too)."""

    def make(row: Row) -> Row:
        total, count = (
            getattr(row, f"{prefix}_seconds_sum"),
            getattr(row, f"{prefix}_seconds_count"),
        )
        return Row(
            count=count,
            low=getattr(row, f"{prefix}_seconds_min"),
            mean=total / func.nullif(count, literal_column("0")),
            high=getattr(row, f"{prefix}_seconds_max"),
            p50=getattr(row, f"{prefix}_seconds_p50"),
            p95=getattr(row, f"{prefix}_seconds_p95"),
        )

    return Embedded("DurationStats", make)


# --- per-node metrics and counters (read through NODE_COUNTERS) ----------------------


def _total_of(row: Any) -> Expr:
    total = getattr(row, STATUS_COLUMNS[0])
    for name in STATUS_COLUMNS[1:]:
        total = total + getattr(row, name)
    return total


def _failure_rate(row: Any) -> Expr:
    """domain.metrics.rules.failure_rate: FAILED / (COMPLETED + FAILED), null before any."""
    ended = func.nullif(row.completed + row.failed, literal_column("0"))
    return cast(row.failed, Float()) / ended


register(
    "NodeMetrics",
    {
        **columns("node", *STATUS_COLUMNS, "percentiles_completed"),
        "jobsTotal": Computed(_total_of),
        "failureRate": Computed(_failure_rate),
        "runDuration": stats("run"),
        "jobDuration": stats("job"),
        "percentilesAsOf": DateTime("percentiles_at"),
        "taskTypeRevision": Related("TaskTypeRevision", by_id(revision_t, "task_type_revision_id")),
    },
)


def _metrics(ctx: Build, row: Row, bound: Bound | None) -> tuple[FromClause, list[Expr]]:
    n = NODE_COUNTERS.alias(ctx.name("nc"))
    return n, [n.c.batch_id == row.id]


class _Counters(Related):
    """One object from the sums over the batch's NODE_COUNTERS rows (zeros when none)."""

    def build(self, ctx: Build, f: Any, bound: Bound | None, row: Row) -> Expr:
        n = NODE_COUNTERS.alias(ctx.name("nc"))
        sums = {c: func.coalesce(func.sum(n.c[c]), literal_column("0")) for c in STATUS_COLUMNS}
        r = recipe_t.alias(ctx.name("rc"))
        completed = (
            select(func.count())
            .select_from(r)
            .where(r.c.batch_id == row.id, r.c.jobs_completed == r.c.job_count)
            .correlate_except(r)
            .scalar_subquery()
        )
        inner = Row(
            **sums,
            jobs_total=_total_of(Row(**sums)),
            recipes_estimated=row.recipes_estimated,
            recipes_total=row.recipes_total,
            recipes_completed=completed,
        )
        obj = ctx.object("BatchCounters", f.children("BatchCounters"), inner)
        found = (
            select(obj)
            .select_from(n)
            .where(n.c.batch_id == row.id)
            .group_by(literal_column("()"))  # one row, whatever is selected
            .correlate_except(n)
        )
        return found.scalar_subquery()


register(
    "BatchCounters",
    columns(
        "jobs_total",
        *STATUS_COLUMNS,
        "recipes_estimated",
        "recipes_total",
        "recipes_completed",
    ),
)

# --- batches -------------------------------------------------------------------------


def _root_id(row: Row) -> Expr:
    return func.coalesce(row.root_batch_id, row.id)


def _batch_where(column: str, value: Any) -> Any:
    def source(ctx: Build, row: Row, bound: Bound | None) -> tuple[FromClause, list[Expr]]:
        b = batch_t.alias(ctx.name("b"))
        return b, [b.c[column] == value(row)]

    return source


def _recipes(ctx: Build, row: Row, bound: Bound) -> tuple[FromClause, list[Expr]]:
    r = recipe_t.alias(ctx.name("r"))
    return r, [r.c.batch_id == row.id]


def _batch_jobs(ctx: Build, row: Row, bound: Bound) -> tuple[FromClause, list[Expr]]:
    j = job_t.alias(ctx.name("j"))
    page: Page = bound.data
    where = [j.c.batch_id == row.id]
    where += JOB_FILTERS.build(ctx, bound, page.base, j, page.extra)
    return j, where


JOB_FILTERS = Filters(
    Filter(
        lambda s: list(s.statuses) or None if s.statuses else None,
        lambda t, v: t.c.status == any_(cast(v, ARRAY(JOB_STATUS))),
        ARRAY(Text()),
        lambda v: [s.value for s in v],
    ),
    text_equals("node", "node"),
    text_equals("worker", "worker"),
    *time_range("created_after", "created_before", "created_at"),
    *time_range("completed_after", "completed_before", "completed_at"),
)

BATCH_COLUMNS = (
    "title",
    "description",
    "priority",
    "max_parallel_jobs",
    "cache_policy",
    "is_creation_done",
    "is_superseded",
    "created_by",
)

register(
    "Batch",
    {
        "id": GlobalId("Batch"),
        **columns(*BATCH_COLUMNS),
        "recipeDefinition": Column("recipe"),
        **datetimes("superseded_at", "canceled_at", "created_at"),
        # Its own edits or its jobs' newest change, folded or not (BatchRepository).
        "lastModifiedAt": Computed(
            lambda row: sqljson.iso_datetime(
                func.greatest(row.last_modified_at, counters.last_change(row.id))
            )
        ),
        "workspace": Related("Workspace", by_id(workspace_t, "workspace_id")),
        "counters": _Counters("BatchCounters", _metrics),
        "nodeMetrics": Related("NodeMetrics", _metrics, many=True, order=lambda n: [n.c.position]),
        "metrics": Related("NodeMetrics", _metrics, many=True, order=lambda n: [n.c.position]),
        "rootBatch": Related("Batch", _batch_where("id", _root_id)),
        "supersededBatch": Related("Batch", _batch_where("id", lambda r: r.superseded_batch_id)),
        "nextBatch": Related("Batch", _batch_where("superseded_batch_id", lambda r: r.id)),
        "chain": Related(
            "Batch",
            _batch_where("root_batch_id", _root_id),
            many=True,
            order=lambda b: [b.c.id],
        ),
        "recipes": Connection(
            "Recipe",
            _recipes,
            lambda t, page: [(t.c.position, "int", BigInteger())],
            total=lambda ctx, row, bound: row.recipes_total,
            check_cursor=lambda after, extra: check_cursor(after, [Recipe.position]),
        ),
        "jobs": Connection(
            "Job",
            _batch_jobs,
            id_key(),
            arguments=job_filter_arguments,
            check_cursor=lambda after, extra: check_cursor(after, [Job.id]),
        ),
    },
)
register_connection("Batch")

# --- recipes -------------------------------------------------------------------------


def _recipe_jobs(ctx: Build, row: Row, bound: Bound) -> tuple[FromClause, list[Expr]]:
    j = job_t.alias(ctx.name("j"))
    return j, [j.c.recipe_id == row.id]


register(
    "Recipe",
    {
        "id": GlobalId("Recipe"),
        "inputIndex": Column("position"),
        **columns("item", "job_count", "jobs_completed"),
        "isCompleted": Computed(lambda row: row.jobs_completed == row.job_count),
        "batch": Related("Batch", by_id(batch_t, "batch_id")),
        "previousRecipe": Related("Recipe", by_id(recipe_t, "previous_recipe_id")),
        "jobs": Connection(
            "Job",
            _recipe_jobs,
            id_key(),
            total=lambda ctx, row, bound: row.job_count,
            check_cursor=lambda after, extra: check_cursor(after, [Job.id]),
        ),
    },
)
register_connection("Recipe")

# --- jobs and their events -----------------------------------------------------------


def _job_task_type(ctx: Build, row: Row, bound: Bound | None) -> tuple[FromClause, list[Expr]]:
    t = task_type_t.alias(ctx.name("tt"))
    r = revision_t.alias(ctx.name("tr"))
    of_revision = (
        select(r.c.task_type_id).where(r.c.id == row.task_type_revision_id).correlate_except(r)
    )
    return t, [t.c.id == of_revision.scalar_subquery()]


def _related_jobs(mine: str, theirs: str) -> Any:
    def source(ctx: Build, row: Row, bound: Bound | None) -> tuple[FromClause, list[Expr]]:
        j = job_t.alias(ctx.name("dj"))
        d = dependency_t.alias(ctx.name("dd"))
        linked = select(d.c[theirs]).where(d.c[mine] == row.id).correlate_except(d)
        return j, [j.c.id.in_(linked)]

    return source


def _events(ctx: Build, row: Row, bound: Bound) -> tuple[FromClause, list[Expr]]:
    e = event_t.alias(ctx.name("ev"))
    return e, [e.c.job_id == row.id]


register(
    "JobError",
    {
        "code": Column("error_code"),
        "message": Computed(lambda row: func.coalesce(row.error_message, sqljson.const(""))),
        "category": Column("error_category"),
    },
)

register(
    "Job",
    {
        "id": GlobalId("Job"),
        **columns(
            "node",
            "status",
            "parameters",
            "priority",
            "attempt",
            "max_attempts",
            "worker",
            "result",
        ),
        **datetimes("created_at", "queued_at", "started_at", "completed_at"),
        "error": Embedded("JobError", missing=lambda row: row.error_code.is_(None)),
        "waitingReason": Computed(waiting_reason),
        # The recorded run time, else completed − started (as the node metrics count).
        "runDuration": duration(
            lambda row: func.coalesce(
                row.run_seconds, sqljson.seconds_between(row.started_at, row.completed_at)
            )
        ),
        "jobDuration": duration(
            lambda row: sqljson.seconds_between(row.started_at, row.completed_at)
        ),
        "totalDuration": duration(
            lambda row: sqljson.seconds_between(row.created_at, row.completed_at)
        ),
        "batch": Related("Batch", by_id(batch_t, "batch_id")),
        "recipe": Related("Recipe", by_id(recipe_t, "recipe_id")),
        "taskTypeRevision": Related("TaskTypeRevision", by_id(revision_t, "task_type_revision_id")),
        "taskType": Related("TaskType", _job_task_type),
        "dependencies": Related(
            "Job", _related_jobs("job_id", "depends_on_id"), many=True, order=lambda j: [j.c.id]
        ),
        "dependents": Related(
            "Job", _related_jobs("depends_on_id", "job_id"), many=True, order=lambda j: [j.c.id]
        ),
        "events": Connection(
            "JobEvent",
            _events,
            id_key(),
            check_cursor=lambda after, extra: check_cursor(after, [JobEvent.id]),
        ),
    },
)
register_connection("Job")

register(
    "JobEvent",
    {
        "eventId": Column("id"),
        **columns("from_status", "to_status", "attempt", "worker", "reason"),
        **datetimes("at"),
    },
)
register_connection("JobEvent")
