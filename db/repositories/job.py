from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, TypeVar

from sqlalchemy import Select, func, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from db.enums import JobStatus
from db.models import Job, JobDependency, JobEvent, TaskType, TaskTypeRevision, Workspace
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


class NewJob(NamedTuple):
    id: int
    recipe_id: int
    node: str
    status: JobStatus
    attempt: int


class JobRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def flush(self) -> None:
        await self._session.flush()

    async def insert_new(self, rows: Sequence[dict[str, Any]]) -> list[NewJob]:
        """Insert jobs that do not exist yet (unique on recipe and node); return only those."""
        if not rows:
            return []
        # executemany form: compiled once, sent as batched multi-row INSERTs; plain
        # rows back, not ORM objects (thousands per chunk).
        stmt = (
            pg_insert(Job)
            .on_conflict_do_nothing(index_elements=["recipe_id", "node"])
            .returning(Job.id, Job.recipe_id, Job.node, Job.status, Job.attempt)
        )
        result = await self._session.execute(stmt, list(rows))
        return [NewJob(*row) for row in result]

    async def ids_by_recipe_node(self, recipe_ids: Sequence[int]) -> dict[tuple[int, str], int]:
        rows = await self._session.execute(
            select(Job.recipe_id, Job.node, Job.id).where(Job.recipe_id.in_(recipe_ids))
        )
        return {(r, n): i for r, n, i in rows}

    async def add_dependencies(self, pairs: Sequence[tuple[int, int]]) -> None:
        if pairs:
            await self._session.execute(
                pg_insert(JobDependency).on_conflict_do_nothing(),
                [{"job_id": j, "depends_on_id": d} for j, d in pairs],
            )

    async def add_events(self, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            await self._session.execute(insert(JobEvent), list(rows))

    async def get(self, job_id: int, *, for_update: bool = False) -> Job | None:
        stmt = select(Job).where(Job.id == job_id)
        if for_update:
            stmt = stmt.with_for_update(key_share=True)
        return await self._session.scalar(stmt)

    async def lock(self, ids: Sequence[int]) -> list[Job]:
        """Lock jobs in id order (a fixed order, so two transactions never deadlock).

        In slices: PostgreSQL takes at most 32,767 parameters per statement.
        """
        found: list[Job] = []
        for part in _slices(sorted(set(ids))):
            found += await self._session.scalars(
                select(Job).where(Job.id.in_(part)).order_by(Job.id).with_for_update(key_share=True)
            )
        return found

    async def get_many(self, ids: Sequence[int]) -> list[Job | None]:
        rows = await self._session.scalars(select(Job).where(Job.id.in_(ids)))
        by_id = {row.id: row for row in rows}
        return [by_id.get(i) for i in ids]

    async def dependent_ids(self, job_ids: Sequence[int]) -> list[int]:
        found: set[int] = set()
        for part in _slices(job_ids):
            found.update(
                await self._session.scalars(
                    select(JobDependency.job_id).where(JobDependency.depends_on_id.in_(part))
                )
            )
        return sorted(found)

    async def dead_dependency_counts(self, job_ids: Sequence[int]) -> dict[int, int]:
        """For each job, how many of its dependencies are FAILED or CANCELED."""
        rows = await self._session.execute(
            select(JobDependency.job_id, func.count())
            .join(Job, Job.id == JobDependency.depends_on_id)
            .where(
                JobDependency.job_id.in_(job_ids),
                Job.status.in_([JobStatus.FAILED, JobStatus.CANCELED]),
            )
            .group_by(JobDependency.job_id)
        )
        found = {job_id: 0 for job_id in job_ids}
        found.update({j: int(n) for j, n in rows})
        return found

    async def unfinished_dependency_counts(self, job_ids: Sequence[int]) -> dict[int, int]:
        """For each job, how many of its dependencies are not COMPLETED."""
        rows = await self._session.execute(
            select(JobDependency.job_id, func.count())
            .join(Job, Job.id == JobDependency.depends_on_id)
            .where(JobDependency.job_id.in_(job_ids), Job.status != JobStatus.COMPLETED)
            .group_by(JobDependency.job_id)
        )
        found = {job_id: 0 for job_id in job_ids}
        found.update({j: int(n) for j, n in rows})
        return found

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

    async def running_on(self, worker: str) -> list[Job]:
        rows = await self._session.scalars(
            select(Job)
            .where(Job.worker == worker, Job.status == JobStatus.RUNNING)
            .order_by(Job.id)
            .with_for_update(key_share=True)
        )
        return list(rows)

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

    async def claim_next_external(
        self, *, task_types: Sequence[str] | None, exclude: Sequence[str]
    ) -> Job | None:
        """The best QUEUED job of an ``external`` task type this worker may run: highest
        priority, then oldest; rows other workers are claiming are skipped, so a job
        nobody here can take never blocks the ones behind it."""
        stmt = (
            select(Job)
            .join(TaskTypeRevision, TaskTypeRevision.id == Job.task_type_revision_id)
            .join(TaskType, TaskType.id == TaskTypeRevision.task_type_id)
            .where(Job.status == JobStatus.QUEUED, TaskTypeRevision.implementation == "external")
            .order_by(Job.priority.desc(), Job.queued_at, Job.id)
            .limit(1)
            .with_for_update(of=Job, key_share=True, skip_locked=True)
        )
        if task_types is not None:
            stmt = stmt.where(TaskType.name.in_(list(task_types)))
        if exclude:
            stmt = stmt.where(TaskType.name.not_in(list(exclude)))
        return await self._session.scalar(stmt)

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

    async def refresh(self, job: Job) -> None:
        await self._session.refresh(job)

    async def claim(self, job_id: int) -> Job | None:
        """Lock a QUEUED job for running, skipping it if another worker holds it."""
        return await self._session.scalar(
            select(Job)
            .where(Job.id == job_id, Job.status == JobStatus.QUEUED)
            .with_for_update(key_share=True, skip_locked=True)
        )

    async def queue_pending(self, batch_id: int, *, limit: int) -> list[NewJob]:
        """PENDING → QUEUED for up to ``limit`` jobs of a batch, highest priority then
        oldest first, skipping rows other transactions hold; returns those moved."""
        chosen = (
            select(Job.id)
            .where(Job.batch_id == batch_id, Job.status == JobStatus.PENDING)
            .order_by(Job.priority.desc(), Job.id)
            .limit(limit)
            .with_for_update(key_share=True, skip_locked=True)
            .scalar_subquery()
        )
        result = await self._session.execute(
            update(Job)
            .where(Job.id.in_(chosen))
            .values(status=JobStatus.QUEUED, queued_at=func.now(), last_modified_at=func.now())
            .returning(Job.id, Job.recipe_id, Job.node, Job.task_type_revision_id, Job.attempt)
            .execution_options(synchronize_session=False)
        )
        return [NewJob(i, r, n, JobStatus.QUEUED, a) for i, r, n, _, a in result]

    async def fleet_job_ids(self, job_ids: Sequence[int]) -> list[int]:
        """Those of these jobs whose task type runs on the fleet (not ``external``)."""
        if not job_ids:
            return []
        rows = await self._session.scalars(
            select(Job.id)
            .join(TaskTypeRevision, TaskTypeRevision.id == Job.task_type_revision_id)
            .where(Job.id.in_(job_ids), TaskTypeRevision.implementation != "external")
            .order_by(Job.id)
        )
        return list(rows)

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

    async def active_ids_in_batch(self, batch_id: int) -> list[int]:
        rows = await self._session.scalars(
            select(Job.id)
            .where(
                Job.batch_id == batch_id,
                Job.status.in_(
                    [JobStatus.PENDING, JobStatus.BLOCKED, JobStatus.QUEUED, JobStatus.RUNNING]
                ),
            )
            .order_by(Job.id)
        )
        return list(rows)

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
