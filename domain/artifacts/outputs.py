"""Jobs and artifacts: the files a fleet job reads, and the artifacts it makes.

A fleet implementation's outputs are put into the job's workspace store while it
runs; they are recorded as artifacts (with their relations) by the transaction that
completes the job (domain/jobs/execution.py's finish), so a job is COMPLETED with its
outputs or not at all. Outputs that break the rules fail the job (OUTPUT_INVALID).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from db.enums import RelationType
from db.models import FileStore, Workspace
from db.repositories.artifact import InputFileRow, RelationRow, input_files
from db.uow import UnitOfWork
from domain.artifacts import rules
from domain.artifacts.rules import FileSpec
from domain.artifacts.service import check_data_schema, insert
from domain.errors import SchemaMismatchError


@dataclass(frozen=True, slots=True)
class Output:
    """An artifact a job made; its files' bytes are in store ``store_id`` already."""

    category: str
    store_id: int
    data: dict[str, Any] = field(default_factory=dict)
    files: tuple[FileSpec, ...] = ()
    relations: tuple[tuple[RelationType, int], ...] = ()  # (type, target artifact id)


async def inputs(uow: UnitOfWork, job_id: int) -> list[InputFileRow]:
    return await input_files(uow.session, job_id)


async def output_store(uow: UnitOfWork, job_id: int) -> FileStore | None:
    """The store a job's outputs go to (its workspace's), or None if the job is gone."""
    job = await uow.jobs.get(job_id)
    if job is None:
        return None
    return await uow.artifacts.store_of_workspace(job.workspace_id)


async def problems(uow: UnitOfWork, workspace_id: int, outputs: Sequence[Output]) -> list[str]:
    """Why these outputs cannot be recorded (empty: they can)."""
    found: list[str] = []
    for i, out in enumerate(outputs):
        where = f"$.outputs[{i}]"
        violations = (
            rules.check_category(out.category, f"{where}.category")
            + rules.check_data(out.data, f"{where}.data")
            + rules.check_files(out.files, f"{where}.files")
        )
        found += [f"{v.path}: {v.message}" for v in violations]
        if not violations:
            try:
                await check_data_schema(uow, workspace_id, out.category, out.data)
            except SchemaMismatchError as exc:
                found += [f"{where}{v.path[1:]}: {v.message}" for v in exc.violations]
    return found


async def record(
    uow: UnitOfWork, *, job_id: int, workspace: Workspace, outputs: Sequence[Output]
) -> list[int]:
    """The job's outputs as artifacts, their files recorded as stored, their relations
    (to artifacts that still exist) added. Returns the new artifacts' ids."""
    made: list[int] = []
    now = datetime.now(UTC)
    for out in outputs:
        artifact = await insert(
            uow,
            workspace=workspace,
            category=out.category,
            data=out.data,
            files=out.files,
            expire_after_seconds=None,
            job_id=job_id,
            token_id=None,
            created_by=f"job {job_id}",
            now=now,
        )
        if out.files:
            ids = await uow.artifacts.upsert_files([(f.sha256, f.size) for f in out.files])
            for file_id in sorted(set(ids.values())):
                await uow.artifacts.mark_stored(file_id, out.store_id)
        targets = sorted({t for _, t in out.relations})
        existing = {a.id for a in await uow.artifacts.get_many(targets) if a is not None}
        await uow.artifacts.add_relations(
            [
                RelationRow(artifact.id, target, kind)
                for kind, target in out.relations
                if target in existing and target != artifact.id
            ]
        )
        made.append(artifact.id)
    return made
