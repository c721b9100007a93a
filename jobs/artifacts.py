"""Fleet jobs' files: inputs made local before a run, outputs stored after it.

Inputs come from the stores that hold them (a local store's own file, read-only; an
S3 object copied into the run's scratch folder); outputs go to the job's workspace
store before the job completes, and are recorded by the completing transaction.
"""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import tempfile
from pathlib import Path

from db.models import FileStore
from domain.artifacts import outputs as artifact_outputs
from domain.artifacts.outputs import Output
from domain.artifacts.rules import FileSpec
from jobs import runtime
from jobs.implementations import InputArtifact, InputFile, JobContext


async def prepare(job_id: int) -> JobContext:
    scratch = Path(tempfile.mkdtemp(prefix=f"batchgraph-job-{job_id}-"))
    async with runtime.unit_of_work() as uow:
        rows = await artifact_outputs.inputs(uow, job_id)
        stores = {s.id: _open(s) for s in await uow.artifacts.stores()}
    found: dict[int, InputArtifact] = {}
    for row in rows:
        artifact = found.setdefault(
            row.artifact_id, InputArtifact(row.artifact_id, row.category, row.data, [])
        )
        if row.path is None or row.sha256 is None or row.size is None:
            continue  # an artifact without files
        if row.size == 0 or row.store_id is None:
            local = scratch / "empty"
            local.touch()
        else:
            local = await stores[row.store_id].local_path(row.sha256, scratch / "inputs")
        artifact.files.append(
            InputFile(row.path, row.size, row.sha256, row.content_type or "", local)
        )
    return JobContext(job_id=job_id, inputs=list(found.values()), scratch=scratch)


def _open(row: FileStore):  # type: ignore[no-untyped-def]
    return runtime.file_stores().open(row.id, row.backend.value, row.configuration)


async def store_outputs(context: JobContext) -> tuple[Output, ...]:
    """Put the declared outputs' files into the job's workspace store."""
    if not context.outputs:
        return ()
    async with runtime.unit_of_work() as uow:
        row = await artifact_outputs.output_store(uow, context.job_id)
        if row is None:
            return ()
        store_id, store = row.id, _open(row)
    made: list[Output] = []
    for declared in context.outputs:
        files: list[FileSpec] = []
        for path, local in declared.files.items():
            sha256, size = await asyncio.to_thread(_digest, local)
            if size > 0:
                await store.put_file(sha256, local)
            files.append(FileSpec(path, size, sha256))
        made.append(
            Output(
                category=declared.category,
                store_id=store_id,
                data=declared.data,
                files=tuple(files),
                relations=declared.relations,
            )
        )
    return tuple(made)


def cleanup(context: JobContext) -> None:
    shutil.rmtree(context.scratch, ignore_errors=True)


def _digest(path: Path) -> tuple[str, int]:
    hasher = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            hasher.update(block)
            size += len(block)
    return hasher.hexdigest(), size
