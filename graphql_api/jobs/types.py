from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, cast

import strawberry
from strawberry import relay
from strawberry.scalars import JSON

from db import models
from db.enums import JobStatus
from db.repositories.job import JobFilter as RepoJobFilter
from domain.jobs.rules import iso_duration, seconds_between
from domain.workers.rules import Candidate, metadata, waiting_reason
from graphql_api.context import Info
from graphql_api.ids import node_ints
from graphql_api.relay import Connection, connection, page_args
from graphql_api.tasktypes.types import TaskType, TaskTypeRevision
from graphql_api.visibility import visible

if TYPE_CHECKING:
    from graphql_api.artifacts.types import Artifact
    from graphql_api.batches.types import Batch, Recipe

BatchRef = Annotated["Batch", strawberry.lazy("graphql_api.batches.types")]
RecipeRef = Annotated["Recipe", strawberry.lazy("graphql_api.batches.types")]
ArtifactRef = Annotated["Artifact", strawberry.lazy("graphql_api.artifacts.types")]


@strawberry.type(description="A length of time, as seconds and as ISO-8601 (PT4M0S).")
class Duration:
    seconds: float
    iso: str

    @classmethod
    def of(cls, seconds: float | None) -> Duration | None:
        if seconds is None:
            return None
        return cls(seconds=seconds, iso=iso_duration(seconds) or "PT0S")


@strawberry.input(description="Narrow a job list. Time ranges are [after, before).")
class JobFilter:
    statuses: list[JobStatus] | None = None
    node: str | None = strawberry.field(default=None, description="The recipe node (job name).")
    worker: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    completed_after: datetime | None = None
    completed_before: datetime | None = None

    def to_repo(self, **scope: object) -> RepoJobFilter:
        return RepoJobFilter(
            statuses=tuple(self.statuses) if self.statuses else None,
            node=self.node,
            worker=self.worker,
            created_after=self.created_after,
            created_before=self.created_before,
            completed_after=self.completed_after,
            completed_before=self.completed_before,
            **scope,  # type: ignore[arg-type]
        )


@strawberry.type(description="Why a job failed.")
class JobError:
    code: str
    message: str
    category: str | None = strawberry.field(
        description="A FailureCategory value (kept as a string: failures recorded before"
        " failJob took the enum may hold others)."
    )


@strawberry.type(description="One transition in a job's history (also the replay log).")
class JobEvent:
    event_id: int = strawberry.field(description="Increasing; pass as afterEventId to resume.")
    from_status: JobStatus | None
    to_status: JobStatus
    attempt: int
    worker: str | None
    reason: str | None
    at: datetime

    @classmethod
    def from_model(cls, row: models.JobEvent) -> JobEvent:
        return cls(
            event_id=row.id,
            from_status=row.from_status,
            to_status=row.to_status,
            attempt=row.attempt,
            worker=row.worker,
            reason=row.reason,
            at=row.at,
        )


@strawberry.type(description="A work request: one node of one recipe.")
class Job(relay.Node):
    id: relay.NodeID[int]
    node: str = strawberry.field(description="The recipe node this job runs (its job name).")
    status: JobStatus
    parameters: JSON
    priority: int
    attempt: int
    max_attempts: int
    worker: str | None
    result: JSON | None
    created_at: datetime
    queued_at: datetime | None
    started_at: datetime | None
    completed_at: datetime | None
    model: strawberry.Private[models.Job]

    @classmethod
    def from_model(cls, row: models.Job) -> Job:
        return cls(
            id=row.id,
            node=row.node,
            status=row.status,
            parameters=cast(JSON, row.parameters),
            priority=row.priority,
            attempt=row.attempt,
            max_attempts=row.max_attempts,
            worker=row.worker,
            result=cast(JSON, row.result),
            created_at=row.created_at,
            queued_at=row.queued_at,
            started_at=row.started_at,
            completed_at=row.completed_at,
            model=row,
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Job | None]:
        rows = await info.context.loaders.job.load_many(node_ints(list(node_ids)))
        return await visible(info, rows, Job.from_model)

    @strawberry.field
    def error(self) -> JobError | None:
        if self.model.error_code is None:
            return None
        return JobError(
            code=self.model.error_code,
            message=self.model.error_message or "",
            category=self.model.error_category,
        )

    @strawberry.field(
        description="Why the job is still waiting, when something stands in its way: a"
        ' QUEUED job that no connected worker would take (for an `external` task type: "no'
        ' connected worker offers this task type"; with requirements: "no connected worker'
        ' offers this task type and meets its requirements"), a BLOCKED one waiting for its'
        " dependencies, a PENDING one for a slot under maxParallelJobs. Null otherwise."
    )
    async def waiting_reason(self, info: Info) -> str | None:
        if self.status not in (JobStatus.QUEUED, JobStatus.BLOCKED, JobStatus.PENDING):
            return None
        revision = await info.context.loaders.revision_by_id.load(self.model.task_type_revision_id)
        assert revision is not None
        task_type = await info.context.loaders.task_type.load(revision.task_type_id)
        assert task_type is not None
        connected = await info.context.loaders.connected_workers.load(0)
        return waiting_reason(
            status=self.status,
            task_type=task_type.name,
            implementation=revision.implementation,
            requirements=revision.requirements,
            connected=[
                Candidate(
                    kind=w.kind,
                    enabled=w.enabled,
                    token_enabled=token_enabled,
                    metadata=metadata(w.static_metadata, w.dynamic_metadata),
                )
                for w, token_enabled in connected
            ],
        )

    @strawberry.field(
        description="The implementation's own time, as its worker measured it (COMPLETED"
        " jobs); else completed − started. As the node metrics count it."
    )
    def run_duration(self) -> Duration | None:
        if self.model.run_seconds is not None:
            return Duration.of(self.model.run_seconds)
        return Duration.of(seconds_between(self.started_at, self.completed_at))

    @strawberry.field(
        description="completed − started: the run, plus claiming it and recording its"
        " outcome. As the node metrics count it."
    )
    def job_duration(self) -> Duration | None:
        return Duration.of(seconds_between(self.started_at, self.completed_at))

    @strawberry.field(description="completed − created: the queue wait included.")
    def total_duration(self) -> Duration | None:
        return Duration.of(seconds_between(self.created_at, self.completed_at))

    @strawberry.field
    async def batch(self, info: Info) -> BatchRef:
        from graphql_api.batches.types import Batch

        row = await info.context.loaders.batch.load(self.model.batch_id)
        assert row is not None
        return Batch.from_model(row)

    @strawberry.field
    async def recipe(self, info: Info) -> RecipeRef:
        from graphql_api.batches.types import Recipe

        row = await info.context.loaders.recipe.load(self.model.recipe_id)
        assert row is not None
        return Recipe.from_model(row)

    @strawberry.field(description="The task type revision this job pinned.")
    async def task_type_revision(self, info: Info) -> TaskTypeRevision:
        row = await info.context.loaders.revision_by_id.load(self.model.task_type_revision_id)
        assert row is not None
        return TaskTypeRevision.from_model(row)

    @strawberry.field
    async def task_type(self, info: Info) -> TaskType:
        revision = await info.context.loaders.revision_by_id.load(self.model.task_type_revision_id)
        assert revision is not None
        row = await info.context.loaders.task_type.load(revision.task_type_id)
        assert row is not None
        return TaskType.from_model(row)

    @strawberry.field(description="The jobs this one waits for.")
    async def dependencies(self, info: Info) -> list[Job]:
        ids = await info.context.loaders.dependencies.load(self.id)
        rows = await info.context.loaders.job.load_many(ids)
        return [Job.from_model(r) for r in rows if r is not None]

    @strawberry.field(description="The jobs that wait for this one.")
    async def dependents(self, info: Info) -> list[Job]:
        ids = await info.context.loaders.dependents.load(self.id)
        rows = await info.context.loaders.job.load_many(ids)
        return [Job.from_model(r) for r in rows if r is not None]

    @strawberry.field(
        description="The artifacts it reads (named by its batch's input item), the first"
        " `first` (at most 100) by id."
    )
    async def inputs(self, info: Info, first: int = 20) -> list[ArtifactRef]:
        from graphql_api.artifacts.types import Artifact, bounded

        ids = await info.context.loaders.job_inputs.load(self.id)
        wanted = ids[: bounded(first)]
        found = await Artifact.resolve_nodes(info=info, node_ids=[str(i) for i in wanted])
        return [a for a in found if a is not None]

    @strawberry.field(
        description="The artifacts it made (recorded when it completed), the first `first`"
        " (at most 100) by id."
    )
    async def outputs(self, info: Info, first: int = 20) -> list[ArtifactRef]:
        from graphql_api.artifacts.types import Artifact, bounded

        ids = await info.context.loaders.job_outputs.load(self.id)
        wanted = ids[: bounded(first)]
        found = await Artifact.resolve_nodes(info=info, node_ids=[str(i) for i in wanted])
        return [a for a in found if a is not None]

    @strawberry.field(description="The job's history, oldest first.")
    async def events(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[JobEvent]:
        limits = info.context.settings.limits
        args = page_args(
            first, after, default=limits.default_page_size, maximum=limits.max_page_size
        )

        async def total() -> int:
            return await info.context.loaders.event_count.load(self.id)

        if args.after is None:
            page = await info.context.loaders.events_page.load((self.id, args.first))
        else:
            async with info.context.reads() as reads:
                page = await reads.jobs.events_page(self.id, after=args.after, first=args.first)
        return connection(page, JobEvent.from_model, total, after=args.after)
