from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple, TypeVar

from sqlalchemy import Select, func, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from db.enums import JobStatus
from db.models import Job, JobDependency, JobEvent, TaskTypeRevision, Workspace
from db.repositories.pagination import Page, SortKey, count, keyset_page


@dataclass(frozen=True, slots=True)
class JobFilter:
    public_only: bool = False
    batch_id: int | None = None
    recipe_id: int | None = None
    statuses: Sequence[JobStatus] | None = None
    node: str | None = None
    worker: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    completed_after: datetime | None = None
    completed_before: datetime | None = None


class EventRow(NamedTuple):
    """A job event with what subscribers need besides it: the job's node and whether
    the batch's workspace is public."""

    id: int
    job_id: int
    batch_id: int
    from_status: JobStatus | None
    to_status: JobStatus
    attempt: int
    worker: str | None
    reason: str | None
    at: datetime
    node: str
    public: bool


class RunToStart(NamedTuple):
    id: int
    attempt: int
    revision_id: int
    parameters: dict[str, Any]


class JobRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def flush(self) -> None:
        await self._session.flush()

    async def get(self, job_id: int, *, fresh: bool = False) -> Job | None:
        """``fresh``: re-read even if this session holds the row (moves write in bulk,
        behind the ORM's back)."""
        stmt = select(Job).where(Job.id == job_id)
        if fresh:
            stmt = stmt.execution_options(populate_existing=True)
        return await self._session.scalar(stmt)

    async def blocked_dependents(self, job_ids: Sequence[int]) -> list[int]:
        """The BLOCKED jobs waiting for any of these, locked in id order (waiting for
        the locks of concurrent completions of their other dependencies)."""
        rows = await self._session.execute(
            text(
                "SELECT j.id FROM job j WHERE j.status = 'BLOCKED' AND j.id IN ("
                " SELECT job_id FROM job_dependency"
                " WHERE depends_on_id = ANY(CAST(:ids AS bigint[])))"
                " ORDER BY j.id FOR NO KEY UPDATE"
            ),
            {"ids": list(job_ids)},
        )
        return [int(i) for (i,) in rows]

    async def dependency_states(self, job_id: int) -> list[JobStatus]:
        rows = await self._session.scalars(
            select(Job.status)
            .join(JobDependency, JobDependency.depends_on_id == Job.id)
            .where(JobDependency.job_id == job_id)
        )
        return list(rows)

    async def runs_to_start(
        self, job_ids: Sequence[int], *, worker: str, running_here: Sequence[int]
    ) -> list[RunToStart]:
        """These jobs RUNNING under ``worker`` but not among ``running_here`` (just
        claimed, or their run was interrupted), with what running them needs."""
        rows = await self._session.execute(
            select(Job.id, Job.attempt, Job.task_type_revision_id, Job.parameters)
            .where(
                Job.id.in_(job_ids),
                Job.status == JobStatus.RUNNING,
                Job.worker == worker,
                Job.id.not_in(running_here),
            )
            .order_by(Job.priority.desc(), Job.id)
        )
        return [RunToStart(int(i), int(a), int(r), p) for i, a, r, p in rows]

    async def fit(
        self, job_ids: Sequence[int], *, worker: str, metadata: str, worker_timeout: timedelta
    ) -> list[tuple[int, str, bool, bool]]:
        """For these QUEUED jobs: (id, implementation, whether ``worker`` meets the task
        type's requirements — its recorded metadata, else ``metadata`` —, whether some
        connected fleet worker offers the implementation and meets them)."""
        rows = await self._session.execute(
            text(
                """SELECT j.id, r.implementation,
                  r.requirements <@ coalesce((SELECT w.dynamic_metadata || w.static_metadata
                                              FROM worker w WHERE w.name = :worker),
                                             CAST(:meta AS jsonb)),
                  EXISTS (SELECT 1 FROM worker w
                          WHERE w.kind = 'FLEET' AND w.connected_at IS NOT NULL
                            AND w.last_seen_at >= now() - CAST(:timeout AS interval)
                            AND (w.dynamic_metadata || w.static_metadata) @> r.requirements
                            AND w.dynamic_metadata -> 'implementations' ? r.implementation)
                FROM job j JOIN task_type_revision r ON r.id = j.task_type_revision_id
                WHERE j.id = ANY(CAST(:ids AS bigint[])) AND j.status = 'QUEUED'"""
            ),
            {
                "ids": list(job_ids),
                "worker": worker,
                "meta": metadata,
                "timeout": worker_timeout,
            },
        )
        return [(int(i), str(impl), bool(mine), bool(any_)) for i, impl, mine, any_ in rows]

    async def states(self, job_ids: Sequence[int]) -> dict[int, tuple[JobStatus, int]]:
        rows = await self._session.execute(
            select(Job.id, Job.status, Job.attempt).where(Job.id.in_(job_ids))
        )
        return {int(i): (status, int(attempt)) for i, status, attempt in rows}

    async def get_many(self, ids: Sequence[int]) -> list[Job | None]:
        rows = await self._session.scalars(select(Job).where(Job.id.in_(ids)))
        by_id = {row.id: row for row in rows}
        return [by_id.get(i) for i in ids]

    async def related(self, job_ids: Sequence[int], *, dependents: bool) -> list[list[int]]:
        """Per job: the ids of its dependencies (or its dependents), in key order."""
        mine, theirs = (
            (JobDependency.depends_on_id, JobDependency.job_id)
            if dependents
            else (JobDependency.job_id, JobDependency.depends_on_id)
        )
        rows = await self._session.execute(
            select(mine, theirs).where(mine.in_(job_ids)).order_by(theirs)
        )
        grouped: dict[int, list[int]] = {i: [] for i in job_ids}
        for me, other in rows:
            grouped[me].append(other)
        return [grouped[i] for i in job_ids]

    async def stale_queued_fleet(self, cutoff: datetime, *, limit: int) -> list[int]:
        """QUEUED fleet jobs nobody picked up since ``cutoff`` (their message was lost)."""
        rows = await self._session.scalars(
            select(Job.id)
            .join(TaskTypeRevision, TaskTypeRevision.id == Job.task_type_revision_id)
            .where(
                Job.status == JobStatus.QUEUED,
                Job.queued_at < cutoff,
                TaskTypeRevision.implementation != "external",
            )
            .order_by(Job.priority.desc(), Job.id)
            .limit(limit)
        )
        return list(rows)

    async def batches_with_pending(self, *, limit: int) -> list[int]:
        rows = await self._session.scalars(
            select(Job.batch_id).where(Job.status == JobStatus.PENDING).distinct().limit(limit)
        )
        return list(rows)

    async def running_count(self, worker: str) -> int:
        found = await self._session.scalar(
            select(func.count())
            .select_from(Job)
            .where(Job.worker == worker, Job.status == JobStatus.RUNNING)
        )
        return int(found or 0)

    async def events_after(
        self, *, batch_id: int | None, job_id: int | None, after: int, limit: int
    ) -> list[tuple[JobEvent, str]]:
        """Events (with their job's node) after an id, oldest first: the replay log."""
        stmt = select(JobEvent, Job.node).join(Job, Job.id == JobEvent.job_id)
        if batch_id is not None:
            stmt = stmt.where(JobEvent.batch_id == batch_id)
        if job_id is not None:
            stmt = stmt.where(JobEvent.job_id == job_id)
        rows = await self._session.execute(
            stmt.where(JobEvent.id > after).order_by(JobEvent.id).limit(limit)
        )
        return [(event, node) for event, node in rows]

    async def event_horizon(self) -> int:
        """The largest event id below which no event can still appear (alembic 0006)."""
        return int(await self._session.scalar(select(func.job_event_horizon())) or 0)

    async def events_in_range(
        self,
        *,
        after: int,
        upto: int,
        batch_ids: Sequence[int],
        job_ids: Sequence[int],
        limit: int,
    ) -> list[EventRow]:
        """Events with ``after < id <= upto`` of these batches or jobs, in id order."""
        if not batch_ids and not job_ids:
            return []
        e = JobEvent.__table__.c
        scope = []
        if batch_ids:
            scope.append(e.batch_id.in_(list(batch_ids)))
        if job_ids:
            scope.append(e.job_id.in_(list(job_ids)))
        rows = await self._session.execute(
            select(
                e.id,
                e.job_id,
                e.batch_id,
                e.from_status,
                e.to_status,
                e.attempt,
                e.worker,
                e.reason,
                e.at,
                Job.node,
                Workspace.public,
            )
            .join(Job, Job.id == e.job_id)
            .join(Workspace, Workspace.id == Job.workspace_id)
            .where(e.id > after, e.id <= upto, or_(*scope))
            .order_by(e.id)
            .limit(limit)
        )
        return [EventRow(*row) for row in rows]

    async def events_by_id(self, ids: Sequence[int]) -> list[tuple[JobEvent, str]]:
        rows = await self._session.execute(
            select(JobEvent, Job.node)
            .join(Job, Job.id == JobEvent.job_id)
            .where(JobEvent.id.in_(ids))
            .order_by(JobEvent.id)
        )
        return [(event, node) for event, node in rows]

    async def set_priority_of_waiting(self, batch_id: int, priority: int) -> None:
        """Jobs not yet running take the batch's new priority (dispatch orders by it)."""
        await self._session.execute(
            update(Job)
            .where(
                Job.batch_id == batch_id,
                Job.status.in_([JobStatus.PENDING, JobStatus.BLOCKED, JobStatus.QUEUED]),
            )
            .values(priority=priority)
        )

    async def statuses_by_recipe(self, batch_id: int) -> dict[int, dict[str, JobStatus]]:
        rows = await self._session.execute(
            select(Job.recipe_id, Job.node, Job.status).where(Job.batch_id == batch_id)
        )
        found: dict[int, dict[str, JobStatus]] = {}
        for recipe_id, node, status in rows:
            found.setdefault(recipe_id, {})[node] = status
        return found

    async def waiting(self, task_type_ids: Sequence[int], *, first: int) -> list[list[Job]]:
        """Per task type (any revision), its oldest waiting (PENDING or QUEUED) jobs.

        Sorted in the database, then cut (TopChef cut first, then sorted); one
        statement for all the task types (for DataLoaders).
        """
        ranked = (
            select(
                Job,
                TaskTypeRevision.task_type_id.label("task_type_id"),
                func.row_number()
                .over(
                    partition_by=TaskTypeRevision.task_type_id,
                    order_by=(Job.created_at, Job.id),
                )
                .label("n"),
            )
            .join(TaskTypeRevision, TaskTypeRevision.id == Job.task_type_revision_id)
            .where(
                TaskTypeRevision.task_type_id.in_(task_type_ids),
                Job.status.in_([JobStatus.PENDING, JobStatus.QUEUED]),
            )
            .subquery()
        )
        job = aliased(Job, ranked)
        rows = await self._session.execute(
            select(job, ranked.c.task_type_id)
            .where(ranked.c.n <= first)
            .order_by(ranked.c.task_type_id, ranked.c.n)
        )
        grouped: dict[int, list[Job]] = {i: [] for i in task_type_ids}
        for found, task_type_id in rows:
            grouped[task_type_id].append(found)
        return [grouped[i] for i in task_type_ids]

    def _listing(self, flt: JobFilter) -> Select[Job]:
        stmt = select(Job)
        if flt.public_only:
            stmt = stmt.join(Workspace, Workspace.id == Job.workspace_id).where(
                Workspace.public.is_(True)
            )
        if flt.batch_id is not None:
            stmt = stmt.where(Job.batch_id == flt.batch_id)
        if flt.recipe_id is not None:
            stmt = stmt.where(Job.recipe_id == flt.recipe_id)
        if flt.statuses:
            stmt = stmt.where(Job.status.in_(list(flt.statuses)))
        if flt.node is not None:
            stmt = stmt.where(Job.node == flt.node)
        if flt.worker is not None:
            stmt = stmt.where(Job.worker == flt.worker)
        for column, low, high in (
            (Job.created_at, flt.created_after, flt.created_before),
            (Job.completed_at, flt.completed_after, flt.completed_before),
        ):
            if low is not None:
                stmt = stmt.where(column >= low)
            if high is not None:
                stmt = stmt.where(column < high)
        return stmt

    async def page(self, flt: JobFilter, *, after: SortKey | None, first: int) -> Page[Job]:
        return await keyset_page(
            self._session, self._listing(flt), key=[Job.id], after=after, first=first
        )

    async def count(self, flt: JobFilter) -> int:
        return await count(self._session, self._listing(flt))

    async def events_page(
        self, job_id: int, *, after: SortKey | None, first: int
    ) -> Page[JobEvent]:
        stmt = select(JobEvent).where(JobEvent.job_id == job_id)
        return await keyset_page(self._session, stmt, key=[JobEvent.id], after=after, first=first)

    async def first_per_batch(
        self, batch_ids: Sequence[int], *, first: int, flt: JobFilter
    ) -> list[Page[Job]]:
        """The first page of jobs of each batch, in one statement (for DataLoaders)."""
        return await self._first_per(Job.batch_id, batch_ids, first=first, flt=flt)

    async def first_per_recipe(self, recipe_ids: Sequence[int], *, first: int) -> list[Page[Job]]:
        return await self._first_per(Job.recipe_id, recipe_ids, first=first, flt=JobFilter())

    async def _first_per(
        self, parent: Any, parent_ids: Sequence[int], *, first: int, flt: JobFilter
    ) -> list[Page[Job]]:
        ranked = (
            self._listing(flt)
            .where(parent.in_(parent_ids))
            .add_columns(func.row_number().over(partition_by=parent, order_by=Job.id).label("n"))
            .subquery()
        )
        job = aliased(Job, ranked)
        rows = list(
            await self._session.scalars(select(job).where(ranked.c.n <= first + 1).order_by(job.id))
        )
        key = parent.key
        return _pages(parent_ids, rows, first, lambda j: getattr(j, key), lambda j: (j.id,))

    async def count_per_batch(self, batch_ids: Sequence[int], *, flt: JobFilter) -> list[int]:
        sub = self._listing(flt).where(Job.batch_id.in_(batch_ids)).subquery()
        rows = await self._session.execute(
            select(sub.c.batch_id, func.count()).group_by(sub.c.batch_id)
        )
        found: dict[int, int] = {int(b): int(n) for b, n in rows}
        return [int(found.get(i, 0)) for i in batch_ids]

    async def first_events_per_job(
        self, job_ids: Sequence[int], *, first: int
    ) -> list[Page[JobEvent]]:
        """The first page of events of each job, in one statement (for DataLoaders)."""
        ranked = (
            select(
                JobEvent,
                func.row_number()
                .over(partition_by=JobEvent.job_id, order_by=JobEvent.id)
                .label("n"),
            )
            .where(JobEvent.job_id.in_(job_ids))
            .subquery()
        )
        event = aliased(JobEvent, ranked)
        rows = await self._session.scalars(
            select(event).where(ranked.c.n <= first + 1).order_by(event.job_id, event.id)
        )
        return _pages(job_ids, rows, first, lambda e: e.job_id, lambda e: (e.id,))

    async def event_counts(self, job_ids: Sequence[int]) -> list[int]:
        rows = await self._session.execute(
            select(JobEvent.job_id, func.count())
            .where(JobEvent.job_id.in_(job_ids))
            .group_by(JobEvent.job_id)
        )
        found: dict[int, int] = {int(j): int(n) for j, n in rows}
        return [int(found.get(i, 0)) for i in job_ids]


T = TypeVar("T")
SLICE = 10_000


def _slices(ids: Sequence[int]) -> list[Sequence[int]]:
    return [ids[i : i + SLICE] for i in range(0, len(ids), SLICE)]


def _pages(
    parent_ids: Sequence[int],
    rows: Iterable[T],
    first: int,
    parent_of: Callable[[T], int],
    key_of: Callable[[T], SortKey],
) -> list[Page[T]]:
    grouped: dict[int, list[T]] = {i: [] for i in parent_ids}
    for row in rows:
        grouped[parent_of(row)].append(row)
    pages = []
    for i in parent_ids:
        items = grouped[i]
        pages.append(
            Page(
                items=items[:first],
                keys=[key_of(r) for r in items[:first]],
                has_next=len(items) > first,
            )
        )
    return pages
