from __future__ import annotations

from typing import Annotated

import strawberry
from strawberry.scalars import JSON

from db.enums import RelationType, StoreBackend
from domain.artifacts import service
from domain.artifacts.rules import FileSpec
from graphql_api.artifacts.types import Artifact, ArtifactCategory, FileStore
from graphql_api.context import Info
from graphql_api.errors import Conflict, NotFound, SchemaMismatch, ValidationFailed
from graphql_api.ids import parse_id
from graphql_api.mutations import mutate
from graphql_api.workspaces.types import Workspace


@strawberry.input(description="One file of a new artifact: its path and what its bytes are.")
class ArtifactFileInput:
    path: str = strawberry.field(
        description="Relative, '/'-separated; no '..', no backslash, unique in the artifact."
    )
    size: float = strawberry.field(description="Bytes (a Float: files may pass 2 GiB).")
    sha256: str = strawberry.field(description="64 lower-case hex digits.")
    content_type: str | None = strawberry.field(
        default=None, description="Default: guessed from the path, else application/octet-stream."
    )


@strawberry.input
class CreateArtifactInput:
    category: str
    workspace: str | None = strawberry.field(
        default=None, description="Required unless `job` is given (its workspace is used)."
    )
    data: JSON | None = strawberry.field(
        default=None,
        description="A JSON object, checked against the category's schema if declared.",
    )
    files: list[ArtifactFileInput] = strawberry.field(default_factory=list)
    expire_after_seconds: int | None = strawberry.field(
        default=None, description="0: never; default: the workspace's artifactExpirySeconds."
    )
    job: strawberry.ID | None = strawberry.field(
        default=None,
        description="An output of this job, which runs on your (pull) worker; a worker token may"
        " create only these.",
    )


@strawberry.input
class CreateArtifactCategoryInput:
    workspace: str
    name: str
    description: str = ""
    data_schema: JSON | None = strawberry.field(
        default=None, description="A JSON Schema for its artifacts' data (default: any object)."
    )


@strawberry.input(description="source → target.")
class ArtifactRelationInput:
    source: strawberry.ID
    target: strawberry.ID
    type: RelationType


@strawberry.input
class CreateFileStoreInput:
    name: str
    backend: StoreBackend
    configuration: JSON | None = strawberry.field(
        default=None,
        description="LOCAL: {root}; S3: {bucket, prefix, endpointUrl, region}. Credentials come"
        " from the processes' environment (AWS_ACCESS_KEY_ID …), never from here.",
    )


@strawberry.input
class UpdateWorkspaceStorageInput:
    workspace: str
    file_store: str | None = strawberry.field(
        default=None, description="Where its new files go (by store name)."
    )
    artifact_expiry_seconds: int | None = strawberry.field(
        default=None, description="Its artifacts' default expiry; 0: never."
    )


@strawberry.type
class ArtifactCreated:
    artifact: Artifact
    paths_to_upload: list[str] = strawberry.field(
        description="Sorted: the files whose bytes are not stored yet (PUT them to their"
        " uploadUrl). Empty files and files stored before are complete at once."
    )


@strawberry.type
class ArtifactCategoryCreated:
    category: ArtifactCategory


@strawberry.type
class ArtifactRelationAdded:
    source: Artifact
    target: Artifact
    type: RelationType


@strawberry.type
class ArtifactRelationRemoved:
    source: Artifact
    removed: bool = strawberry.field(description="False: there was no such relation.")


@strawberry.type
class FileStoreCreated:
    file_store: FileStore


@strawberry.type
class WorkspaceStorageUpdated:
    workspace: Workspace


CreateArtifactPayload = Annotated[
    ArtifactCreated | ValidationFailed | SchemaMismatch | NotFound,
    strawberry.union("CreateArtifactPayload"),
]
CreateArtifactCategoryPayload = Annotated[
    ArtifactCategoryCreated | ValidationFailed | Conflict | NotFound,
    strawberry.union("CreateArtifactCategoryPayload"),
]
AddArtifactRelationPayload = Annotated[
    ArtifactRelationAdded | ValidationFailed | Conflict | NotFound,
    strawberry.union("AddArtifactRelationPayload"),
]
RemoveArtifactRelationPayload = Annotated[
    ArtifactRelationRemoved | NotFound, strawberry.union("RemoveArtifactRelationPayload")
]
CreateFileStorePayload = Annotated[
    FileStoreCreated | ValidationFailed | Conflict, strawberry.union("CreateFileStorePayload")
]
UpdateWorkspaceStoragePayload = Annotated[
    WorkspaceStorageUpdated | ValidationFailed | NotFound,
    strawberry.union("UpdateWorkspaceStoragePayload"),
]


def _size(value: float) -> int:
    return int(value) if float(value).is_integer() else -1


@strawberry.type
class ArtifactMutations:
    @strawberry.mutation(
        description="Create an artifact with its files (writer; a worker for its job's outputs);"
        " then upload the bytes of pathsToUpload."
    )
    async def create_artifact(
        self, info: Info, input: CreateArtifactInput
    ) -> CreateArtifactPayload:
        spec = service.ArtifactSpec(
            workspace=input.workspace,
            category=input.category,
            data={} if input.data is None else input.data,
            files=[FileSpec(f.path, _size(f.size), f.sha256, f.content_type) for f in input.files],
            expire_after_seconds=input.expire_after_seconds,
            job_id=parse_id(input.job, "Job") if input.job is not None else None,
        )
        return await mutate(
            info,
            CreateArtifactPayload,
            lambda uow: service.create_artifact(uow, spec=spec, actor=info.context.actor),
            lambda found: ArtifactCreated(
                artifact=Artifact.from_model(found.artifact), paths_to_upload=found.paths_to_upload
            ),
        )

    @strawberry.mutation(description="Declare a category's data schema (writer).")
    async def create_artifact_category(
        self, info: Info, input: CreateArtifactCategoryInput
    ) -> CreateArtifactCategoryPayload:
        return await mutate(
            info,
            CreateArtifactCategoryPayload,
            lambda uow: service.create_category(
                uow,
                workspace=input.workspace,
                name=input.name,
                description=input.description,
                data_schema=input.data_schema,
                actor=info.context.actor,
            ),
            lambda row: ArtifactCategoryCreated(category=ArtifactCategory.from_model(row)),
        )

    @strawberry.mutation(
        description="Relate two complete artifacts you may read (writer); adding it twice is"
        " harmless."
    )
    async def add_artifact_relation(
        self, info: Info, input: ArtifactRelationInput
    ) -> AddArtifactRelationPayload:
        return await mutate(
            info,
            AddArtifactRelationPayload,
            lambda uow: service.add_relation(
                uow,
                source_id=parse_id(input.source, "Artifact"),
                target_id=parse_id(input.target, "Artifact"),
                type=input.type,
                actor=info.context.actor,
            ),
            lambda found: ArtifactRelationAdded(
                source=Artifact.from_model(found[0]),
                target=Artifact.from_model(found[1]),
                type=input.type,
            ),
        )

    @strawberry.mutation(description="Remove a relation (writer).")
    async def remove_artifact_relation(
        self, info: Info, input: ArtifactRelationInput
    ) -> RemoveArtifactRelationPayload:
        return await mutate(
            info,
            RemoveArtifactRelationPayload,
            lambda uow: service.remove_relation(
                uow,
                source_id=parse_id(input.source, "Artifact"),
                target_id=parse_id(input.target, "Artifact"),
                type=input.type,
                actor=info.context.actor,
            ),
            lambda found: ArtifactRelationRemoved(
                source=Artifact.from_model(found[0]), removed=found[1]
            ),
        )

    @strawberry.mutation(description="Register a file store (admin).")
    async def create_file_store(
        self, info: Info, input: CreateFileStoreInput
    ) -> CreateFileStorePayload:
        return await mutate(
            info,
            CreateFileStorePayload,
            lambda uow: service.create_file_store(
                uow,
                name=input.name,
                backend=input.backend,
                configuration=input.configuration or {},
                actor=info.context.actor,
            ),
            lambda row: FileStoreCreated(file_store=FileStore.from_model(row)),
        )

    @strawberry.mutation(
        description="Choose a workspace's file store and its artifacts' default expiry (admin)."
    )
    async def update_workspace_storage(
        self, info: Info, input: UpdateWorkspaceStorageInput
    ) -> UpdateWorkspaceStoragePayload:
        return await mutate(
            info,
            UpdateWorkspaceStoragePayload,
            lambda uow: service.update_workspace_storage(
                uow,
                workspace=input.workspace,
                file_store=input.file_store,
                artifact_expiry_seconds=input.artifact_expiry_seconds,
                actor=info.context.actor,
            ),
            lambda row: WorkspaceStorageUpdated(workspace=Workspace.from_model(row)),
        )
