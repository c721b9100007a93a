from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry import relay

from db import models
from domain.workspaces.service import can_read
from graphql_api.context import Info
from graphql_api.ids import node_ints
from graphql_api.relay import Connection

if TYPE_CHECKING:
    from graphql_api.artifacts.types import ArtifactCategory, FileStore
    from graphql_api.tasktypes.types import TaskType, TaskTypeFilter

FileStoreRef = Annotated["FileStore", strawberry.lazy("graphql_api.artifacts.types")]
ArtifactCategoryRef = Annotated["ArtifactCategory", strawberry.lazy("graphql_api.artifacts.types")]
TaskTypeRef = Annotated["TaskType", strawberry.lazy("graphql_api.tasktypes.types")]
TaskTypeFilterRef = Annotated["TaskTypeFilter", strawberry.lazy("graphql_api.tasktypes.types")]


@strawberry.type(description="A space that owns task types, batches, artifacts and datablocks.")
class Workspace(relay.Node):
    id: relay.NodeID[int]
    name: str
    public: bool = strawberry.field(description="Anonymous callers may read public workspaces.")
    created_at: datetime
    artifact_expiry_seconds: int = strawberry.field(
        description="Its artifacts expire this long after creation unless they say otherwise"
        " (0: never)."
    )
    model: strawberry.Private[models.Workspace]

    @classmethod
    def from_model(cls, row: models.Workspace) -> Workspace:
        return cls(
            id=row.id,
            name=row.name,
            public=row.public,
            created_at=row.created_at,
            artifact_expiry_seconds=row.artifact_expiry_seconds,
            model=row,
        )

    @strawberry.field(description="Where its new artifact files are stored.")
    async def file_store(self, info: Info) -> FileStoreRef:
        from graphql_api.artifacts.types import FileStore

        async with info.context.reads() as reads:
            row = await reads.artifacts.store_of_workspace(self.id)
        return FileStore.from_model(row)

    @strawberry.field(description="The categories whose data schema it declares, by name.")
    async def artifact_categories(self, info: Info) -> list[ArtifactCategoryRef]:
        from graphql_api.artifacts.types import ArtifactCategory

        async with info.context.reads() as reads:
            rows = await reads.artifacts.categories(self.id)
        return [ArtifactCategory.from_model(r) for r in rows[:100]]

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Workspace | None]:
        ids = node_ints(list(node_ids))
        rows = await info.context.loaders.workspace.load_many(ids)
        return [
            cls.from_model(row) if row is not None and can_read(row, info.context.actor) else None
            for row in rows
        ]

    @strawberry.field(description="Task types of this workspace, by name.")
    async def task_types(
        self,
        info: Info,
        filter: TaskTypeFilterRef | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[TaskTypeRef]:
        from graphql_api.tasktypes.queries import task_type_connection

        return await task_type_connection(
            info, workspace_id=self.id, flt=filter, first=first, after=after
        )
