from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from enum import Enum
from typing import cast

import strawberry
from strawberry import relay
from strawberry.scalars import JSON

from db import models
from db.enums import CachePolicy, JobStatus
from db.repositories.batch import BatchOrder
from db.repositories.counters import NodeCounts
from db.repositories.job import JobFilter as RepoJobFilter
from domain.metrics import rules as metric_rules
from domain.metrics.service import node_stats
from graphql_api.context import Info
from graphql_api.ids import node_ints
from graphql_api.jobs.types import Duration, Job, JobFilter
from graphql_api.relay import Connection, connection, nested_page, page_args
from graphql_api.tasktypes.types import TaskTypeRevision
from graphql_api.visibility import visible
from graphql_api.workspaces.types import Workspace


@strawberry.enum
class OrderDirection(Enum):
    ASC = "ASC"
    DESC = "DESC"


@strawberry.input
class BatchOrderBy:
    field: BatchOrder = BatchOrder.ID
    direction: OrderDirection = OrderDirection.ASC


@strawberry.input(description="Narrow a batch list. Time ranges are [after, before).")
class BatchFilter:
    workspace: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    task_type: str | None = strawberry.field(
        default=None, description="Batches with a node running this task type (by name)."
    )
    is_creation_done: bool | None = None
    is_superseded: bool | None = None
    root_batch: strawberry.ID | None = strawberry.field(
        default=None, description="Batches of this chain (by its root batch)."
    )


@strawberry.type(description="Job counts by status, and recipe counts.")
class BatchCounters:
    jobs_total: int
    pending: int
    blocked: int
    queued: int
    running: int
    completed: int
    failed: int
    canceled: int
    recipes_estimated: int
    recipes_total: int
    recipes_completed: int


@strawberry.type(
    description="A duration over the node's COMPLETED jobs that have it (all null when"
    " none). min, avg and max are live; p50 and p95 are recomputed in the background, at"
    " most one counter fold (0.5 s) behind: see `NodeMetrics.percentilesAsOf`."
)
class DurationStats:
    count: int = strawberry.field(description="How many jobs min, avg and max are over.")
    min: Duration | None
    avg: Duration | None
    max: Duration | None
    p50: Duration | None = strawberry.field(description="The median (interpolated).")
    p95: Duration | None = strawberry.field(description="The 95th percentile (interpolated).")

    @classmethod
    def of(cls, found: metric_rules.DurationStats) -> DurationStats:
        return cls(
            count=found.count,
            min=Duration.of(found.min),
            avg=Duration.of(found.avg),
            max=Duration.of(found.max),
            p50=Duration.of(found.p50),
            p95=Duration.of(found.p95),
        )


@strawberry.type(
    description="Per node (job name): counts by status, the failure rate and durations."
    " Zero counts and null durations until its jobs move."
)
class NodeMetrics:
    node: str
    jobs_total: int
    pending: int
    blocked: int
    queued: int
    running: int
    completed: int
    failed: int
    canceled: int
    failure_rate: float | None = strawberry.field(
        description="FAILED / (COMPLETED + FAILED), from 0 to 1; null before any job ended"
        " (canceled jobs did not fail)."
    )
    run_duration: DurationStats = strawberry.field(
        description="The implementation's own time, as the fleet measured it around the"
        " call or a pull worker reported it (`completeJob(runSeconds:)`); completed −"
        " started when a pull worker reported none."
    )
    job_duration: DurationStats = strawberry.field(
        description="completed − started: the run plus claiming and recording it."
    )
    percentiles_as_of: datetime | None = strawberry.field(
        description="When p50 and p95 were last computed (null: never, no job completed)."
    )
    percentiles_completed: int = strawberry.field(
        description="How many COMPLETED jobs p50 and p95 are over: `completed` once the"
        " background refresh has caught up."
    )
    revision_id: strawberry.Private[int]

    @strawberry.field(description="The task type revision this node pinned.")
    async def task_type_revision(self, info: Info) -> TaskTypeRevision:
        row = await info.context.loaders.revision_by_id.load(self.revision_id)
        assert row is not None
        return TaskTypeRevision.from_model(row)

    @classmethod
    def from_model(cls, row: NodeCounts) -> NodeMetrics:
        stats = node_stats(row)
        return cls(
            node=row.node,
            jobs_total=stats.jobs_total,
            pending=stats.pending,
            blocked=stats.blocked,
            queued=stats.queued,
            running=stats.running,
            completed=stats.completed,
            failed=stats.failed,
            canceled=stats.canceled,
            failure_rate=stats.failure_rate,
            run_duration=DurationStats.of(stats.run),
            job_duration=DurationStats.of(stats.job),
            percentiles_as_of=row.percentiles_at,
            percentiles_completed=row.percentiles_completed,
            revision_id=row.task_type_revision_id,
        )


@strawberry.type(description="One instance of the batch's recipe, for one input item.")
class Recipe(relay.Node):
    id: relay.NodeID[int]
    input_index: int
    item: JSON
    job_count: int
    jobs_completed: int
    model: strawberry.Private[models.Recipe]

    @classmethod
    def from_model(cls, row: models.Recipe) -> Recipe:
        return cls(
            id=row.id,
            input_index=row.position,
            item=cast(JSON, row.item),
            job_count=row.job_count,
            jobs_completed=row.jobs_completed,
            model=row,
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Recipe | None]:
        rows = await info.context.loaders.recipe.load_many(node_ints(list(node_ids)))
        batches = await Batch.resolve_nodes(
            info=info, node_ids=[str(r.batch_id) if r else "0" for r in rows]
        )
        return [cls.from_model(r) if r and b else None for r, b in zip(rows, batches, strict=True)]

    @strawberry.field(description="All its jobs are COMPLETED.")
    def is_completed(self) -> bool:
        return self.jobs_completed == self.job_count

    @strawberry.field
    async def batch(self, info: Info) -> Batch:
        row = await info.context.loaders.batch.load(self.model.batch_id)
        assert row is not None
        return Batch.from_model(row)

    @strawberry.field(description="The recipe of the previous batch this one re-runs.")
    async def previous_recipe(self, info: Info) -> Recipe | None:
        if self.model.previous_recipe_id is None:
            return None
        row = await info.context.loaders.recipe.load(self.model.previous_recipe_id)
        return Recipe.from_model(row) if row is not None else None

    @strawberry.field
    async def jobs(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[Job]:
        return await nested_page(
            info,
            first=first,
            after=after,
            total=self.job_count,
            batched=lambda n: info.context.loaders.recipe_jobs_page.load((self.id, n)),
            direct=lambda reads, args: reads.jobs.page(
                RepoJobFilter(recipe_id=self.id), after=args.after, first=args.first
            ),
            convert=Job.from_model,
        )


@strawberry.type(description="A batch: a recipe run once per input item, in a chain.")
class Batch(relay.Node):
    id: relay.NodeID[int]
    title: str
    description: str
    priority: int
    max_parallel_jobs: int | None
    cache_policy: CachePolicy | None
    recipe_definition: JSON = strawberry.field(
        description="The recipe's nodes with their pinned task type revisions."
    )
    is_creation_done: bool
    is_superseded: bool
    superseded_at: datetime | None
    canceled_at: datetime | None
    created_by: str
    created_at: datetime
    model: strawberry.Private[models.Batch]

    @classmethod
    def from_model(cls, row: models.Batch) -> Batch:
        return cls(
            id=row.id,
            title=row.title,
            description=row.description,
            priority=row.priority,
            max_parallel_jobs=row.max_parallel_jobs,
            cache_policy=row.cache_policy,
            recipe_definition=cast(JSON, row.recipe),
            is_creation_done=row.is_creation_done,
            is_superseded=row.is_superseded,
            superseded_at=row.superseded_at,
            canceled_at=row.canceled_at,
            created_by=row.created_by,
            created_at=row.created_at,
            model=row,
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Batch | None]:
        rows = await info.context.loaders.batch.load_many(node_ints(list(node_ids)))
        return await visible(info, rows, Batch.from_model)

    @strawberry.field(
        description="When the batch or any of its jobs last changed (an edit, a job's move)."
    )
    async def last_modified_at(self, info: Info) -> datetime:
        found = await info.context.loaders.last_modified.load(self.id)
        return found or self.model.last_modified_at

    @strawberry.field
    async def workspace(self, info: Info) -> Workspace:
        row = await info.context.loaders.workspace.load(self.model.workspace_id)
        assert row is not None
        return Workspace.from_model(row)

    @strawberry.field(description="Counters, kept exact under concurrent job changes.")
    async def counters(self, info: Info) -> BatchCounters:
        nodes = await info.context.loaders.batch_nodes.load(self.id)
        sums = {s.value.lower(): sum(getattr(n, s.value.lower()) for n in nodes) for s in JobStatus}
        return BatchCounters(
            jobs_total=sum(sums.values()),
            **sums,
            recipes_estimated=self.model.recipes_estimated,
            recipes_total=self.model.recipes_total,
            recipes_completed=await info.context.loaders.completed_recipes.load(self.id),
        )

    @strawberry.field(description="Per node (job name), in recipe order.")
    async def node_metrics(self, info: Info) -> list[NodeMetrics]:
        return await _node_metrics(info, self.id)

    @strawberry.field(
        description="Per node (job name), in recipe order (the same as nodeMetrics).",
        deprecation_reason="Use nodeMetrics.",
    )
    async def metrics(self, info: Info) -> list[NodeMetrics]:
        return await _node_metrics(info, self.id)

    @strawberry.field(description="The first batch of this chain.")
    async def root_batch(self, info: Info) -> Batch:
        row = await info.context.loaders.batch.load(self.model.root_batch_id or self.id)
        assert row is not None
        return Batch.from_model(row)

    @strawberry.field(description="The batch this one re-processed (and superseded).")
    async def superseded_batch(self, info: Info) -> Batch | None:
        if self.model.superseded_batch_id is None:
            return None
        row = await info.context.loaders.batch.load(self.model.superseded_batch_id)
        return Batch.from_model(row) if row else None

    @strawberry.field(description="The batch that re-processed (and superseded) this one.")
    async def next_batch(self, info: Info) -> Batch | None:
        row = await info.context.loaders.next_batch.load(self.id)
        return Batch.from_model(row) if row else None

    @strawberry.field(description="Every batch of this chain, oldest first.")
    async def chain(self, info: Info) -> list[Batch]:
        rows = await info.context.loaders.chain.load(self.model.root_batch_id or self.id)
        return [Batch.from_model(r) for r in rows]

    @strawberry.field(description="Its recipes, by input index.")
    async def recipes(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[Recipe]:
        return await nested_page(
            info,
            first=first,
            after=after,
            total=self.model.recipes_total,
            batched=lambda n: info.context.loaders.recipes_page.load((self.id, n)),
            direct=lambda reads, args: reads.batches.recipes_page(
                self.id, after=args.after, first=args.first
            ),
            convert=Recipe.from_model,
        )

    @strawberry.field(description="Its jobs, oldest first.")
    async def jobs(
        self,
        info: Info,
        filter: JobFilter | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[Job]:
        limits = info.context.settings.limits
        args = page_args(
            first, after, default=limits.default_page_size, maximum=limits.max_page_size
        )
        flt = filter.to_repo() if filter else RepoJobFilter()

        async def total() -> int:
            return await info.context.loaders.jobs_count.load((self.id, flt))

        if args.after is None:  # the common nested case: batched for every batch at once
            page = await info.context.loaders.jobs_page.load((self.id, args.first, flt))
        else:
            scoped = filter.to_repo(batch_id=self.id) if filter else RepoJobFilter(batch_id=self.id)
            async with info.context.reads() as reads:
                page = await reads.jobs.page(scoped, after=args.after, first=args.first)
        return connection(page, Job.from_model, total, after=args.after)


async def _node_metrics(info: Info, batch_id: int) -> list[NodeMetrics]:
    return [
        NodeMetrics.from_model(n) for n in await info.context.loaders.batch_nodes.load(batch_id)
    ]
