from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, cast

import strawberry
from strawberry import relay
from strawberry.scalars import JSON

from db import models
from db.enums import CachePolicy
from domain.tasktypes.rules import has_timed_out
from graphql_api.context import Info
from graphql_api.ids import node_ints
from graphql_api.relay import Connection, page_args, paginate
from graphql_api.visibility import visible
from graphql_api.workspaces.types import Workspace

if TYPE_CHECKING:
    from graphql_api.jobs.types import Job

JobRef = Annotated["Job", strawberry.lazy("graphql_api.jobs.types")]


@strawberry.input(description="Narrow a task type list.")
class TaskTypeFilter:
    available: bool | None = None
    name_contains: str | None = strawberry.field(
        default=None, description="Case-insensitive substring of the name."
    )


@strawberry.type(description="An immutable revision of a task type: schemas and settings.")
class TaskTypeRevision(relay.Node):
    id: relay.NodeID[int]
    revision: int
    description: str
    parameters_schema: JSON
    result_schema: JSON
    implementation: str = strawberry.field(
        description="'external' (pull workers) or a fleet implementation such as builtin.echo."
    )
    timeout_seconds: int | None
    max_attempts: int
    cache_policy: CachePolicy
    requirements: JSON = strawberry.field(
        description="What a worker must offer to run these jobs (matched against its metadata)."
    )
    created_by: str
    created_at: datetime
    task_type_id: strawberry.Private[int]

    @classmethod
    def from_model(cls, row: models.TaskTypeRevision) -> TaskTypeRevision:
        return cls(
            id=row.id,
            revision=row.revision,
            description=row.description,
            parameters_schema=cast(JSON, row.parameters_schema),
            result_schema=cast(JSON, row.result_schema),
            implementation=row.implementation,
            timeout_seconds=row.timeout_seconds,
            max_attempts=row.max_attempts,
            cache_policy=row.cache_policy,
            requirements=cast(JSON, row.requirements),
            created_by=row.created_by,
            created_at=row.created_at,
            task_type_id=row.task_type_id,
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[TaskTypeRevision | None]:
        async with info.context.reads() as reads:
            rows = await reads.task_types.get_revisions_by_id(node_ids_list(node_ids))
        visible = await TaskType.resolve_nodes(
            info=info, node_ids=[str(r.task_type_id) if r else "0" for r in rows]
        )
        return [
            cls.from_model(row) if row is not None and parent is not None else None
            for row, parent in zip(rows, visible, strict=True)
        ]

    @strawberry.field
    async def task_type(self, info: Info) -> TaskType:
        row = await info.context.loaders.task_type.load(self.task_type_id)
        if row is None:  # pragma: no cover - revisions cascade with their task type
            raise LookupError(self.task_type_id)
        return TaskType.from_model(row)


@strawberry.type(description="A task type (a 'service'): what jobs run, with its revisions.")
class TaskType(relay.Node):
    id: relay.NodeID[int]
    name: str
    available: bool = strawberry.field(
        description="Set by check-in or by hand; new task types start unavailable."
    )
    check_in_timeout_seconds: int
    last_check_in_at: datetime | None
    latest_revision: int = strawberry.field(description="The number of the newest revision.")
    created_at: datetime
    workspace_id: strawberry.Private[int]

    @classmethod
    def from_model(cls, row: models.TaskType) -> TaskType:
        return cls(
            id=row.id,
            name=row.name,
            available=row.available,
            check_in_timeout_seconds=row.check_in_timeout_seconds,
            last_check_in_at=row.last_check_in_at,
            latest_revision=row.latest_revision,
            created_at=row.created_at,
            workspace_id=row.workspace_id,
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[TaskType | None]:
        rows = await info.context.loaders.task_type.load_many(node_ids_list(node_ids))
        return await visible(info, rows, cls.from_model)

    @strawberry.field
    async def workspace(self, info: Info) -> Workspace:
        row = await info.context.loaders.workspace.load(self.workspace_id)
        if row is None:  # pragma: no cover - the foreign key forbids it
            raise LookupError(self.workspace_id)
        return Workspace.from_model(row)

    @strawberry.field(
        description="Strictly more than the check-in timeout since the last check-in."
    )
    def has_timed_out(self) -> bool:
        return has_timed_out(
            last_check_in=self.last_check_in_at,
            created_at=self.created_at,
            timeout_seconds=self.check_in_timeout_seconds,
            now=datetime.now(UTC),
        )

    @strawberry.field(description="The newest revision.")
    async def current_revision(self, info: Info) -> TaskTypeRevision:
        row = await info.context.loaders.revision.load((self.id, self.latest_revision))
        if row is None:  # pragma: no cover - a task type always has its revisions
            raise LookupError(self.id)
        return TaskTypeRevision.from_model(row)

    @strawberry.field(description="One revision by number; null if it does not exist.")
    async def revision(self, info: Info, number: int) -> TaskTypeRevision | None:
        row = await info.context.loaders.revision.load((self.id, number))
        return TaskTypeRevision.from_model(row) if row is not None else None

    @strawberry.field(
        description="Its oldest waiting (PENDING or QUEUED) jobs, oldest first (at most 100)."
    )
    async def queue(self, info: Info, first: int = 20) -> list[JobRef]:
        from graphql_api.jobs.types import Job

        args = page_args(
            first, None, default=20, maximum=info.context.settings.limits.max_page_size
        )
        rows = await info.context.loaders.queue.load((self.id, args.first))
        return [Job.from_model(r) for r in rows]

    @strawberry.field(description="All revisions, oldest first.")
    async def revisions(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[TaskTypeRevision]:
        return await paginate(
            info,
            first=first,
            after=after,
            page=lambda reads, args: reads.task_types.revision_page(
                self.id, after=args.after, first=args.first
            ),
            count=lambda reads: reads.task_types.revision_count(self.id),
            convert=TaskTypeRevision.from_model,
        )


def node_ids_list(node_ids: Iterable[str]) -> list[int]:
    return node_ints(list(node_ids))
