"""Artifact use cases: categories, creation with files, relations, stores, expiry.

Creating an artifact takes a constant number of statements whatever its number of
files (file rows are upserted in one statement, its paths inserted in another).
Which paths still need bytes is read from the database after the upsert: a file is
complete only once a store holds it in full (``file_in_store``), so two artifacts
created together over the same files can never make each other look complete.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from db.enums import JobStatus, RelationType, StoreBackend, TokenRole
from db.models import Artifact, ArtifactCategory, FileStore, Workspace
from db.repositories.artifact import RelationRow
from db.uow import UnitOfWork
from domain.artifacts import rules
from domain.artifacts.rules import FileSpec
from domain.auth.rules import Actor, require_admin, require_authenticated, require_writer
from domain.errors import (
    ConflictError,
    ForbiddenError,
    NotFoundError,
    SchemaMismatchError,
    Violation,
    raise_if_invalid,
)
from domain.periodic.service import periodic
from domain.tasktypes.rules import check_json_schema, validate_document
from domain.text import check_text
from domain.workspaces.rules import check_name
from domain.workspaces.service import can_read, get_readable

EXPIRE_SLICE = 1_000


@dataclass(frozen=True, slots=True)
class ArtifactSpec:
    workspace: str | None
    category: str
    data: Any = field(default_factory=dict)
    files: Sequence[FileSpec] = ()
    expire_after_seconds: int | None = None  # None: the workspace's default; 0: never
    job_id: int | None = None  # made by this (running) job: an output


@dataclass(frozen=True, slots=True)
class Created:
    artifact: Artifact
    paths_to_upload: list[str]


async def get_visible(uow: UnitOfWork, artifact_id: int, actor: Actor | None) -> Artifact:
    """The artifact if the actor may read its workspace; a hidden one looks missing."""
    artifact = await uow.artifacts.get(artifact_id)
    if artifact is not None:
        [workspace] = await uow.workspaces.get_many([artifact.workspace_id])
        if workspace is not None and can_read(workspace, actor):
            return artifact
    raise NotFoundError(f"No artifact with id {artifact_id}")


async def may_write(uow: UnitOfWork, artifact: Artifact, actor: Actor | None) -> None:
    """Writers may write every artifact; a worker only the outputs of a job it runs."""
    who = require_authenticated(actor)
    if who.role in (TokenRole.ADMIN, TokenRole.WRITER):
        return
    if who.role is TokenRole.WORKER and artifact.created_by_job_id is not None:
        worker = await uow.workers.get_by_token(who.token_id)
        job = await uow.jobs.get(artifact.created_by_job_id)
        if (
            worker is not None
            and job is not None
            and job.worker == worker.name
            and job.status is JobStatus.RUNNING
        ):
            return
    raise ForbiddenError(
        f"Writing artifact {artifact.id} needs a WRITER token (or the worker running the job"
        f" that makes it); yours is {who.role}"
    )


async def create_category(
    uow: UnitOfWork,
    *,
    workspace: str,
    name: str,
    description: str,
    data_schema: Any,
    actor: Actor | None,
) -> ArtifactCategory:
    """Declare a category's data schema (writer). Artifacts of a category nobody declared
    carry any JSON object as data."""
    who = require_writer(actor)
    found = await get_readable(uow.workspaces, name=workspace, actor=actor)
    schema = {"type": "object"} if data_schema is None else data_schema
    raise_if_invalid(
        "Invalid artifact category",
        rules.check_category(name, "$.name")
        + check_json_schema(schema, "$.dataSchema")
        + check_text(description, "$.description", max_length=10_000, multiline=True),
    )
    if await uow.artifacts.category(found.id, name) is not None:
        raise ConflictError(f"A category named {name!r} exists in {workspace!r}")
    row = ArtifactCategory(
        workspace_id=found.id,
        name=name,
        description=description,
        data_schema=schema,
        created_by=who.owner,
    )
    uow.artifacts.add(row)
    await uow.artifacts.flush()
    return row


async def create_artifact(
    uow: UnitOfWork, *, spec: ArtifactSpec, actor: Actor | None, now: datetime | None = None
) -> Created:
    """An artifact and its paths; the answer lists, sorted, the paths whose bytes no
    store holds yet (to upload). Writers anywhere; a worker for the job it runs
    (``spec.job_id``), in that job's workspace."""
    who = require_authenticated(actor)
    workspace = await _workspace_for(uow, spec, who)
    raise_if_invalid(
        "Invalid artifact",
        rules.check_category(spec.category)
        + rules.check_data(spec.data)
        + rules.check_files(spec.files)
        + rules.check_expiry(spec.expire_after_seconds, "$.expireAfterSeconds"),
    )
    await check_data_schema(uow, workspace.id, spec.category, spec.data)
    artifact = await insert(
        uow,
        workspace=workspace,
        category=spec.category,
        data=spec.data,
        files=spec.files,
        expire_after_seconds=spec.expire_after_seconds,
        job_id=spec.job_id,
        token_id=who.token_id or None,
        created_by=who.owner,
        now=now or datetime.now(UTC),
    )
    return Created(artifact, await uow.artifacts.missing_paths(artifact.id))


async def _workspace_for(uow: UnitOfWork, spec: ArtifactSpec, who: Actor) -> Workspace:
    if spec.job_id is None:
        require_writer(who)
        return await get_readable(uow.workspaces, name=spec.workspace or "", actor=who)
    job = await uow.jobs.get(spec.job_id)
    if job is None:
        raise NotFoundError(f"No job with id {spec.job_id}")
    if who.role not in (TokenRole.ADMIN, TokenRole.WRITER):
        worker = (
            await uow.workers.get_by_token(who.token_id) if who.role is TokenRole.WORKER else None
        )
        if worker is None or job.worker != worker.name or job.status is not JobStatus.RUNNING:
            raise ForbiddenError(f"Job {spec.job_id} is not running on your worker")
    [workspace] = await uow.workspaces.get_many([job.workspace_id])
    assert workspace is not None
    if spec.workspace is not None and spec.workspace != workspace.name:
        raise_if_invalid(
            "Invalid artifact",
            [Violation("$.workspace", "a job's outputs go to the job's workspace")],
        )
    return workspace


async def check_data_schema(uow: UnitOfWork, workspace_id: int, category: str, data: Any) -> None:
    declared = await uow.artifacts.category(workspace_id, category)
    if declared is None:
        return
    problems = validate_document(declared.data_schema, data, "$.data")
    if problems:
        raise SchemaMismatchError(
            f"The data does not match category {category!r}'s schema", problems
        )


async def insert(
    uow: UnitOfWork,
    *,
    workspace: Workspace,
    category: str,
    data: Any,
    files: Sequence[FileSpec],
    expire_after_seconds: int | None,
    job_id: int | None,
    token_id: int | None,
    created_by: str,
    now: datetime,
) -> Artifact:
    """The artifact row and its paths, in three statements whatever the file count."""
    ids = await uow.artifacts.upsert_files([(f.sha256, f.size) for f in files])
    artifact = Artifact(
        workspace_id=workspace.id,
        category=category,
        data=data,
        created_by_job_id=job_id,
        created_by_token_id=token_id,
        created_by=created_by[:200],
        created_at=now,
        expire_at=rules.expire_at(
            now, own=expire_after_seconds, workspace_default=workspace.artifact_expiry_seconds
        ),
    )
    uow.artifacts.add(artifact)
    await uow.artifacts.flush()
    await uow.artifacts.add_files(
        artifact.id, [(f.path, ids[(f.sha256, f.size)], f.declared_type()) for f in files]
    )
    return artifact


# --- relations ---------------------------------------------------------------------


async def add_relation(
    uow: UnitOfWork,
    *,
    source_id: int,
    target_id: int,
    type: RelationType,
    actor: Actor | None,
) -> tuple[Artifact, Artifact]:
    """source → target (writer). Idempotent; never to itself, never to or from an
    artifact whose files are not all uploaded, never to one the caller cannot read."""
    require_writer(actor)
    source = await get_visible(uow, source_id, actor)
    if source_id == target_id:
        raise_if_invalid(
            "Invalid relation", [Violation("$.target", "an artifact cannot relate to itself")]
        )
    target = await get_visible(uow, target_id, actor)
    # Lock both (in id order) so an expiry or a concurrent change sees a settled state.
    for i in sorted((source_id, target_id)):
        await uow.artifacts.get(i, for_update=True)
    incomplete = await uow.artifacts.incomplete([source_id, target_id])
    if incomplete:
        raise ConflictError(
            "Artifact(s) "
            + ", ".join(str(i) for i in sorted(incomplete))
            + " still have files to upload: relate complete artifacts only"
        )
    await uow.artifacts.add_relations([RelationRow(source_id, target_id, type)])
    return source, target


async def remove_relation(
    uow: UnitOfWork,
    *,
    source_id: int,
    target_id: int,
    type: RelationType,
    actor: Actor | None,
) -> tuple[Artifact, bool]:
    """Remove source → target (writer); removing an absent relation changes nothing."""
    require_writer(actor)
    source = await get_visible(uow, source_id, actor)
    await get_visible(uow, target_id, actor)
    removed = await uow.artifacts.remove_relation(RelationRow(source_id, target_id, type))
    return source, removed


# --- stores and workspace settings -------------------------------------------------------


async def create_file_store(
    uow: UnitOfWork,
    *,
    name: str,
    backend: StoreBackend,
    configuration: Any,
    actor: Actor | None,
) -> FileStore:
    """Register a store (admin). S3 stores name a bucket (and optionally an endpoint,
    a region, a key prefix); credentials come from the processes' environment."""
    require_admin(actor)
    violations = check_name(name)
    allowed = (
        {"root"}
        if backend is StoreBackend.LOCAL
        else {
            "bucket",
            "prefix",
            "endpointUrl",
            "region",
        }
    )
    if not isinstance(configuration, Mapping):
        violations.append(Violation("$.configuration", "must be a JSON object"))
    else:
        for key, value in configuration.items():
            if key not in allowed:
                violations.append(
                    Violation(f"$.configuration.{key}", f"unknown; expected {sorted(allowed)}")
                )
            elif not isinstance(value, str) or len(value) > 1000:
                violations.append(Violation(f"$.configuration.{key}", "must be a short string"))
        if backend is StoreBackend.S3 and not configuration.get("bucket"):
            violations.append(Violation("$.configuration.bucket", "an S3 store needs a bucket"))
    raise_if_invalid("Invalid file store", violations)
    if await uow.artifacts.store_by_name(name) is not None:
        raise ConflictError(f"A file store named {name!r} exists")
    row = FileStore(name=name, backend=backend, configuration=dict(configuration))
    uow.artifacts.add(row)
    await uow.artifacts.flush()
    return row


async def update_workspace_storage(
    uow: UnitOfWork,
    *,
    workspace: str,
    file_store: str | None,
    artifact_expiry_seconds: int | None,
    actor: Actor | None,
) -> Workspace:
    """Where a workspace's new files go, and its artifacts' default expiry (admin)."""
    require_admin(actor)
    found = await get_readable(uow.workspaces, name=workspace, actor=actor)
    raise_if_invalid(
        "Invalid workspace settings",
        rules.check_expiry(artifact_expiry_seconds, "$.artifactExpirySeconds"),
    )
    if file_store is not None:
        store = await uow.artifacts.store_by_name(file_store)
        if store is None:
            raise NotFoundError(f"No file store named {file_store!r}")
        found.file_store_id = store.id
    if artifact_expiry_seconds is not None:
        found.artifact_expiry_seconds = artifact_expiry_seconds
    await uow.artifacts.flush()
    return found


# --- expiry --------------------------------------------------------------------------


@periodic(
    "artifacts.expire",
    seconds=60,
    description="Delete expired artifacts no live artifact relates to, then the bytes of"
    " files no artifact references any more.",
)
async def expire_artifacts(uow: UnitOfWork, now: datetime) -> str | None:
    deleted, orphans = await uow.artifacts.expire(now, limit=EXPIRE_SLICE)
    if orphans:
        stores = uow.file_stores
        rows = await uow.artifacts.stores()

        async def delete_bytes() -> None:
            # After the commit: a row never says "stored" for bytes already gone.
            if stores is None:
                return
            for row in rows:
                store = stores.open(row.id, row.backend.value, row.configuration)
                for _, sha256 in orphans:
                    await store.delete(sha256)

        uow.after_commit(delete_bytes)
    if not deleted and not orphans:
        return None
    return f"{deleted} artifacts and {len(orphans)} files deleted"
