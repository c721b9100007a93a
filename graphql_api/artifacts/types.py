from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated, cast

import strawberry
from strawberry import relay
from strawberry.relay.utils import to_base64
from strawberry.scalars import JSON

from db import models
from db.enums import RelationType, StoreBackend
from db.repositories.artifact import FileEntry, RelationRow
from domain.artifacts import rules
from domain.auth.rules import sees_private_workspaces
from domain.errors import ErrorCode
from graphql_api.context import Info
from graphql_api.errors import ApiError
from graphql_api.files import file_url
from graphql_api.ids import node_ints
from graphql_api.relay import Connection, nested_page
from graphql_api.visibility import visible
from graphql_api.workspaces.types import Workspace

if TYPE_CHECKING:
    from graphql_api.jobs.types import Job

JobRef = Annotated["Job", strawberry.lazy("graphql_api.jobs.types")]
ALL_TYPES = tuple(RelationType)
DEFAULT_RELATIONS = 20


@strawberry.enum(description="Which way lineage follows relations.")
class LineageDirection(Enum):
    UPSTREAM = "UPSTREAM"  # source → target: what it was built using, extends, relates to
    DOWNSTREAM = "DOWNSTREAM"  # target → source: what was built using it, extends it…
    BOTH = "BOTH"


@strawberry.type(description="One file of an artifact: a path and the content it names.")
class File:
    path: str
    size: int
    sha256: str = strawberry.field(description="Lower-case hex; also the download's ETag.")
    content_type: str
    is_complete: bool = strawberry.field(
        description="Its bytes are stored in full (empty files always are)."
    )
    artifact_id: strawberry.Private[int]

    @classmethod
    def from_entry(cls, entry: FileEntry) -> File:
        return cls(
            path=entry.path,
            size=entry.size,
            sha256=entry.sha256,
            content_type=entry.content_type,
            is_complete=entry.complete,
            artifact_id=entry.artifact_id,
        )

    @strawberry.field(
        description="GET it (with Range if you like) with the same token as for GraphQL."
    )
    def download_url(self, info: Info) -> str:
        return file_url(info.context.base_url(), self.artifact_id, self.path)

    @strawberry.field(
        description="PUT its bytes here, resumably: `Content-Range: bytes START-END/SIZE`;"
        " `bytes */SIZE` asks how much arrived."
    )
    def upload_url(self, info: Info) -> str:
        return file_url(info.context.base_url(), self.artifact_id, self.path)


@strawberry.type(description="source → target.")
class ArtifactRelation:
    type: RelationType
    source_id: strawberry.Private[int]
    target_id: strawberry.Private[int]

    @classmethod
    def of(cls, row: RelationRow) -> ArtifactRelation:
        return cls(type=row.type, source_id=row.source_id, target_id=row.target_id)

    @strawberry.field(description="Null if you may not read it.")
    async def source(self, info: Info) -> Artifact | None:
        return await _artifact(info, self.source_id)

    @strawberry.field(description="Null if you may not read it.")
    async def target(self, info: Info) -> Artifact | None:
        return await _artifact(info, self.target_id)


async def _artifact(info: Info, artifact_id: int) -> Artifact | None:
    [found] = await Artifact.resolve_nodes(info=info, node_ids=[str(artifact_id)])
    return found


@strawberry.type(description="An artifact in a lineage graph, at its distance from the start.")
class LineageNode:
    depth: int
    artifact: Artifact


@strawberry.type(description="A relation between two nodes of a lineage graph (by their ids).")
class LineageEdge:
    type: RelationType
    source: strawberry.ID
    target: strawberry.ID


@strawberry.type(description="The artifacts related to one, transitively, and their relations.")
class Lineage:
    nodes: list[LineageNode] = strawberry.field(description="Nearest first; the start included.")
    edges: list[LineageEdge]
    is_truncated: bool = strawberry.field(
        description="More artifacts (or relations) were reachable than returned."
    )


@strawberry.type(
    description="A category's declared data schema (artifacts are checked against it)."
)
class ArtifactCategory:
    name: str
    description: str
    data_schema: JSON
    created_by: str
    created_at: datetime

    @classmethod
    def from_model(cls, row: models.ArtifactCategory) -> ArtifactCategory:
        return cls(
            name=row.name,
            description=row.description,
            data_schema=cast(JSON, row.data_schema),
            created_by=row.created_by,
            created_at=row.created_at,
        )


@strawberry.type(description="Where file bytes are kept.")
class FileStore:
    name: str
    backend: StoreBackend
    is_default: bool = strawberry.field(description="Workspaces that name no store use it.")

    @classmethod
    def from_model(cls, row: models.FileStore) -> FileStore:
        return cls(name=row.name, backend=row.backend, is_default=row.is_default)


@strawberry.type(
    description="A typed bundle of files (path → content) with JSON data, made by a person"
    " or a job, related to other artifacts."
)
class Artifact(relay.Node):
    id: relay.NodeID[int]
    category: str
    data: JSON
    created_at: datetime
    expire_at: datetime | None = strawberry.field(
        description="It is expired from this moment on (null: never)."
    )
    creator: str = strawberry.field(description="The owner of the token that created it.")
    model: strawberry.Private[models.Artifact]

    @classmethod
    def from_model(cls, row: models.Artifact) -> Artifact:
        return cls(
            id=row.id,
            category=row.category,
            data=cast(JSON, row.data),
            created_at=row.created_at,
            expire_at=row.expire_at,
            creator=row.created_by,
            model=row,
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Artifact | None]:
        rows = await info.context.loaders.artifact.load_many(node_ints(list(node_ids)))
        return await visible(info, rows, Artifact.from_model)

    @strawberry.field(
        description="Its expireAt has passed (it goes at the next expiry run"
        " unless a live artifact relates to it)."
    )
    def is_expired(self) -> bool:
        return rules.is_expired(self.expire_at, datetime.now(UTC))

    @strawberry.field
    async def workspace(self, info: Info) -> Workspace:
        row = await info.context.loaders.workspace.load(self.model.workspace_id)
        assert row is not None
        return Workspace.from_model(row)

    @strawberry.field(description="The job that made it (an output), if a job did.")
    async def created_by(self, info: Info) -> JobRef | None:
        from graphql_api.jobs.types import Job

        if self.model.created_by_job_id is None:
            return None
        [found] = await Job.resolve_nodes(info=info, node_ids=[str(self.model.created_by_job_id)])
        return found

    @strawberry.field(description="Every file is uploaded: it may be related and used as input.")
    async def is_complete(self, info: Info) -> bool:
        return (await info.context.loaders.artifact_file_counts.load(self.id))[2] == 0

    @strawberry.field
    async def file_count(self, info: Info) -> int:
        return (await info.context.loaders.artifact_file_counts.load(self.id))[0]

    @strawberry.field(description="Bytes of all its files together.")
    async def total_size(self, info: Info) -> float:
        return float((await info.context.loaders.artifact_file_counts.load(self.id))[1])

    @strawberry.field(description="Its files, by path.")
    async def files(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[File]:
        total = (await info.context.loaders.artifact_file_counts.load(self.id))[0]

        async def direct(reads, args):  # type: ignore[no-untyped-def]
            after_path = str(args.after[0]) if args.after else None
            [page] = await reads.artifacts.first_entries(
                [self.id], first=args.first, after=after_path
            )
            return page

        return await nested_page(
            info,
            first=first,
            after=after,
            total=total,
            batched=lambda n: info.context.loaders.artifact_files_page.load((self.id, n)),
            direct=direct,
            convert=File.from_entry,
        )

    @strawberry.field(description="Its relations to other artifacts (it is the source).")
    async def relations(
        self, info: Info, types: list[RelationType] | None = None, first: int = DEFAULT_RELATIONS
    ) -> list[ArtifactRelation]:
        rows = await info.context.loaders.relations.load(
            (self.id, True, _types(types), bounded(first))
        )
        return [ArtifactRelation.of(r) for r in rows]

    @strawberry.field(description="Relations of other artifacts to this one (it is the target).")
    async def related_from(
        self, info: Info, types: list[RelationType] | None = None, first: int = DEFAULT_RELATIONS
    ) -> list[ArtifactRelation]:
        rows = await info.context.loaders.relations.load(
            (self.id, False, _types(types), bounded(first))
        )
        return [ArtifactRelation.of(r) for r in rows]

    @strawberry.field(
        description="The artifacts reachable from this one along relations of `types`, up to"
        " `depth` hops (at most 20), at most `first` of them (nearest first, at most 500),"
        " with the relations among them (at most 4 × first): one SQL query. Cycles end;"
        " unreadable workspaces are not crossed."
    )
    async def lineage(
        self,
        info: Info,
        direction: LineageDirection = LineageDirection.UPSTREAM,
        depth: int = 3,
        types: list[RelationType] | None = None,
        first: int = 100,
    ) -> Lineage:
        if not 1 <= depth <= rules.MAX_DEPTH:
            raise ApiError(ErrorCode.BAD_REQUEST, f"depth must be between 1 and {rules.MAX_DEPTH}")
        if not 1 <= first <= rules.MAX_LINEAGE_NODES:
            raise ApiError(
                ErrorCode.BAD_REQUEST, f"first must be between 1 and {rules.MAX_LINEAGE_NODES}"
            )
        async with info.context.reads() as reads:
            found = await reads.artifacts.lineage(
                self.id,
                upstream=direction is not LineageDirection.DOWNSTREAM,
                downstream=direction is not LineageDirection.UPSTREAM,
                depth=depth,
                types=_types(types),
                cap=first,
                edge_cap=min(rules.MAX_LINEAGE_EDGES, 4 * first),
                private=sees_private_workspaces(info.context.actor),
            )
        for row, _ in found.nodes:  # later fields of these nodes load from here
            info.context.loaders.artifact.prime(row.id, row)
        return Lineage(
            nodes=[LineageNode(depth=d, artifact=Artifact.from_model(r)) for r, d in found.nodes],
            edges=[
                LineageEdge(
                    type=e.type,
                    source=strawberry.ID(to_base64("Artifact", e.source_id)),
                    target=strawberry.ID(to_base64("Artifact", e.target_id)),
                )
                for e in found.edges
            ],
            is_truncated=found.truncated,
        )


def _types(types: list[RelationType] | None) -> tuple[RelationType, ...]:
    return tuple(sorted(set(types))) if types else ALL_TYPES


def bounded(first: int) -> int:
    """A list's `first`, between 0 and 100."""
    if not 0 <= first <= rules.MAX_RELATIONS:
        raise ApiError(ErrorCode.BAD_REQUEST, f"first must be between 0 and {rules.MAX_RELATIONS}")
    return first
