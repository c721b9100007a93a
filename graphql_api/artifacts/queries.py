from __future__ import annotations

import strawberry

from db.repositories.artifact import ArtifactFilter as RepoFilter
from domain.auth.rules import sees_private_workspaces
from graphql_api.artifacts.types import Artifact, FileStore
from graphql_api.context import Info
from graphql_api.ids import MISSING, parse_id
from graphql_api.relay import Connection, paginate


@strawberry.input(description="Narrow an artifact list.")
class ArtifactFilter:
    workspace: str | None = None
    category: str | None = None
    created_by: strawberry.ID | None = strawberry.field(
        default=None, description="Outputs of this job."
    )


@strawberry.type
class ArtifactQueries:
    @strawberry.field(description="Artifacts you may read, oldest first.")
    async def artifacts(
        self,
        info: Info,
        filter: ArtifactFilter | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[Artifact]:
        f = filter or ArtifactFilter()
        flt = RepoFilter(
            public_only=not sees_private_workspaces(info.context.actor),
            workspace=f.workspace,
            category=f.category,
            created_by_job_id=parse_id(f.created_by, "Job") if f.created_by else None,
        )
        return await paginate(
            info,
            first=first,
            after=after,
            page=lambda reads, args: reads.artifacts.page(flt, after=args.after, first=args.first),
            count=lambda reads: reads.artifacts.count(flt),
            convert=Artifact.from_model,
        )

    @strawberry.field(description="An artifact by id; null if missing or not readable.")
    async def artifact(self, info: Info, id: strawberry.ID) -> Artifact | None:
        artifact_id = parse_id(id, "Artifact")
        if artifact_id == MISSING:
            return None
        [found] = await Artifact.resolve_nodes(info=info, node_ids=[str(artifact_id)])
        return found

    @strawberry.field(description="The file stores of this deployment.")
    async def file_stores(self, info: Info) -> list[FileStore]:
        async with info.context.reads() as reads:
            return [FileStore.from_model(r) for r in await reads.artifacts.stores()]
