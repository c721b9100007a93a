"""`batchgraph demo`: a workspace with real data to explore at once.

Task types run by the fleet's ``builtin.simulate`` (it waits a moment and returns its
parameters, or fails as an input item asks). Two chains:

* "Nightly resize": a batch of 20 images of which three fail for real, their
  thumbnails canceled; then a fixed revision of the failing task type and a second
  batch re-processing only the failed part of the chain;
* "Catalog render": three batches of the same pages, each re-processing the whole
  chain with a changed recipe — the second compresses faster (an improvement), the
  third renders larger pages, slower (a regression). Its comparison shows both.

The jobs run on the worker fleet like any others: the launcher waits for them between
steps.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from db.enums import CachePolicy, RelationType, RerunMode
from db.repositories.job import JobFilter
from db.uow import UnitOfWork
from domain.artifacts import service as artifacts
from domain.artifacts import uploads
from domain.artifacts.rules import FileSpec
from domain.auth.rules import Actor
from domain.batches import service as batches
from domain.ports import FileStores
from domain.tasktypes import service as tasktypes
from domain.tasktypes.rules import RevisionFields
from domain.workspaces import service as workspaces

WORKSPACE = "demo"
ITEMS = 20
FAILING = {3, 11, 17}  # input indexes whose resize fails (in the first batch)
RESIZE_SECONDS = 0.3
THUMBNAIL_SECONDS = 0.2
FIRST_TITLE = "Nightly resize"
SECOND_TITLE = "Nightly resize, failed part again"

# The catalog chain: (title, seconds per page to render, seconds per page to compress).
# Changes are large (2.5× slower, 2.5× faster) next to the jitter of jobs this long, so
# the comparison flags exactly one regression and one improvement at its default
# threshold (20 %).
CATALOG_PAGES = 8
CATALOG_STEPS = (
    ("Catalog render", 1.0, 1.5),
    ("Catalog render, faster compression", 1.0, 0.6),
    ("Catalog render, larger pages", 2.5, 0.6),
)


@dataclass(frozen=True, slots=True)
class Progress:
    is_creation_done: bool
    jobs_total: int
    finished: int  # completed, failed or canceled
    metrics_current: bool = True  # p50/p95 cover every completed job (the fold ran)

    @property
    def is_done(self) -> bool:
        return self.is_creation_done and self.finished == self.jobs_total and self.metrics_current


def _items() -> list[dict[str, object]]:
    items: list[dict[str, object]] = []
    for i in range(ITEMS):
        item: dict[str, object] = {
            "url": f"https://images.example/photo-{i:03d}.jpg",
            "width": 800,
            "seconds": RESIZE_SECONDS,
        }
        if i in FAILING:
            item["failWith"] = {
                "code": "SOURCE_UNREADABLE",
                "message": "404 from the image source",
                "category": "DOMAIN",
            }
        items.append(item)
    return items


async def seed_first_batch(units: Callable[[], UnitOfWork], *, actor: Actor) -> int | None:
    """The workspace, its task types and the first batch (created and run by the fleet).

    None when the demo workspace exists already (nothing is added)."""
    async with units() as uow:
        if await uow.workspaces.name_exists(WORKSPACE):
            return None
        await workspaces.create_workspace(uow, name=WORKSPACE, public=True, actor=actor)
        for name, schema, description in (
            (
                "resize-image",
                {
                    "type": "object",
                    "required": ["url", "width"],
                    "properties": {
                        "url": {"type": "string"},
                        "width": {"type": "integer", "minimum": 1},
                    },
                },
                "Resize one image (a stand-in: builtin.simulate)",
            ),
            (
                "make-thumbnail",
                {"type": "object", "required": ["source"]},
                "Make a thumbnail (a stand-in: builtin.simulate)",
            ),
            (
                "render-page",
                {"type": "object", "required": ["page"]},
                "Render one catalog page (a stand-in: builtin.simulate)",
            ),
            (
                "compress-image",
                {"type": "object", "required": ["source"]},
                "Compress a rendered page (a stand-in: builtin.simulate)",
            ),
        ):
            await tasktypes.create_task_type(
                uow,
                spec=tasktypes.TaskTypeSpec(
                    workspace=WORKSPACE,
                    name=name,
                    fields=RevisionFields(
                        description=description,
                        parameters_schema=schema,
                        result_schema={"type": "object"},
                        implementation="builtin.simulate",
                        timeout_seconds=60,
                        max_attempts=3,
                        cache_policy=CachePolicy.NONE,
                    ),
                ),
                actor=actor,
            )
        await uow.commit()

    definition = {
        "recipe": {
            "nodes": [
                {"name": "resize", "taskType": "resize-image"},
                {
                    "name": "thumbnail",
                    "taskType": "make-thumbnail",
                    "dependsOn": ["resize"],
                    "parameters": {
                        "source": "{{item.url}}",
                        "size": 128,
                        "seconds": THUMBNAIL_SECONDS,
                    },
                },
            ]
        },
        "inputs": _items(),
    }
    return await _create(
        units,
        actor,
        batches.BatchSpec(
            workspace=WORKSPACE,
            title=FIRST_TITLE,
            definition=definition,
            description="Seeded by `batchgraph demo`; three images fail on purpose.",
        ),
    )


async def reprocess_failed(
    units: Callable[[], UnitOfWork], *, actor: Actor, first_batch_id: int
) -> int:
    """A fixed revision of resize-image, then a batch re-running the chain's failed part."""
    async with units() as uow:
        workspace = await uow.workspaces.get_by_name(WORKSPACE)
        assert workspace is not None
        task_type = await uow.task_types.get_by_name(workspace.id, "resize-image")
        assert task_type is not None
        await tasktypes.create_revision(
            uow,
            task_type_id=task_type.id,
            changes=tasktypes.RevisionChanges(
                description="Resize one image (revision 2: the source is read again;"
                " a stand-in: builtin.echo, which never fails)",
                implementation="builtin.echo",
            ),
            actor=actor,
        )
        await uow.commit()
    return await _create(
        units,
        actor,
        batches.BatchSpec(
            workspace=WORKSPACE,
            title=SECOND_TITLE,
            previous=batches.PreviousBatch(root_batch_id=first_batch_id, rerun=RerunMode.FAILED),
        ),
    )


def catalog_recipe(render_seconds: float, compress_seconds: float) -> dict[str, object]:
    return {
        "nodes": [
            {
                "name": "render",
                "taskType": "render-page",
                "parameters": {"page": "{{item.page}}", "seconds": render_seconds},
            },
            {
                "name": "compress",
                "taskType": "compress-image",
                "dependsOn": ["render"],
                "parameters": {"source": "{{item.page}}", "seconds": compress_seconds},
            },
        ]
    }


async def catalog_step(
    units: Callable[[], UnitOfWork], *, actor: Actor, step: int, root_batch_id: int | None
) -> int:
    """The catalog chain's batch number ``step`` (0, 1, 2): the first creates the chain,
    each next one re-processes all of it with that step's recipe."""
    title, render_seconds, compress_seconds = CATALOG_STEPS[step]
    recipe = catalog_recipe(render_seconds, compress_seconds)
    if root_batch_id is None:
        spec = batches.BatchSpec(
            workspace=WORKSPACE,
            title=title,
            definition={
                "recipe": recipe,
                "inputs": [{"page": f"catalog/page-{i:02d}.pdf"} for i in range(CATALOG_PAGES)],
            },
            description="Seeded by `batchgraph demo`: compare its chain.",
        )
    else:
        spec = batches.BatchSpec(
            workspace=WORKSPACE,
            title=title,
            definition={"recipe": recipe},
            previous=batches.PreviousBatch(root_batch_id=root_batch_id, rerun=RerunMode.ALL),
            description=f"Re-processes the chain: {title.split(', ', 1)[-1]}.",
        )
    return await _create(units, actor, spec)


async def _create(units: Callable[[], UnitOfWork], actor: Actor, spec: batches.BatchSpec) -> int:
    """Stored at once; the fleet creates its recipes and jobs and runs them."""
    async with units() as uow:
        created = await batches.create_batch(uow, spec=spec, actor=actor)
        await uow.commit()
    assert created.batch is not None
    return created.batch.id


async def progress(units: Callable[[], UnitOfWork], *, batch_id: int) -> Progress:
    async with units() as uow:  # read inside: leaving without a commit expires the rows
        batch = await uow.batches.get(batch_id)
        [nodes] = await uow.batches.nodes([batch_id])
        assert batch is not None
        total = sum(
            n.pending + n.blocked + n.queued + n.running + n.completed + n.failed + n.canceled
            for n in nodes
        )
        finished = sum(n.completed + n.failed + n.canceled for n in nodes)
        current = all(n.percentiles_completed == n.completed for n in nodes)
        return Progress(batch.is_creation_done, total, finished, current)


# --- artifacts: documents, a checksum batch over them, and what relates to its outputs ---

DOCUMENTS = {
    "caption-000.txt": "a cat on a mat\n",
    "caption-001.txt": "two dogs in the snow\nthe second dog is asleep\n",
    "caption-002.txt": "sunset over the harbour\n",
}
ARTIFACTS_TITLE = "Checksums of the captions"


async def _bytes(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _artifact(
    units: Callable[[], UnitOfWork],
    stores: FileStores,
    actor: Actor,
    *,
    category: str,
    files: dict[str, bytes],
    data: dict[str, object],
) -> int:
    """An artifact with its bytes uploaded, as a client would."""
    async with units() as uow:
        created = await artifacts.create_artifact(
            uow,
            spec=artifacts.ArtifactSpec(
                workspace=WORKSPACE,
                category=category,
                data=data,
                files=[
                    FileSpec(p, len(b), hashlib.sha256(b).hexdigest()) for p, b in files.items()
                ],
                expire_after_seconds=0,
            ),
            actor=actor,
        )
        await uow.commit()
    for path in created.paths_to_upload:
        await uploads.put(
            units,
            stores,
            artifact_id=created.artifact.id,
            path=path,
            content_range=None,
            content_length=len(files[path]),
            body=_bytes(files[path]),
            actor=actor,
        )
    return created.artifact.id


async def seed_artifacts(
    units: Callable[[], UnitOfWork], stores: FileStores, *, actor: Actor
) -> int:
    """Three caption documents (one with an edition that EXTENDS it), and a batch whose
    builtin.checksum jobs read them and make outputs BUILT_USING them. Its id."""
    async with units() as uow:
        await artifacts.create_category(
            uow,
            workspace=WORKSPACE,
            name="caption",
            description="A caption of one image, as plain text",
            data_schema={
                "type": "object",
                "required": ["image"],
                "properties": {"image": {"type": "string"}},
            },
            actor=actor,
        )
        await tasktypes.create_task_type(
            uow,
            spec=tasktypes.TaskTypeSpec(
                workspace=WORKSPACE,
                name="checksum",
                fields=RevisionFields(
                    description="sha256, lines and words of the input artifacts' files",
                    parameters_schema={"type": "object"},
                    result_schema={"type": "object", "required": ["files"]},
                    implementation="builtin.checksum",
                    timeout_seconds=60,
                    max_attempts=2,
                    cache_policy=CachePolicy.NONE,
                ),
            ),
            actor=actor,
        )
        await uow.commit()
    ids = []
    for i, (name, text) in enumerate(DOCUMENTS.items()):
        ids.append(
            await _artifact(
                units,
                stores,
                actor,
                category="caption",
                files={name: text.encode()},
                data={"image": f"https://images.example/photo-{i:03d}.jpg"},
            )
        )
    edition = await _artifact(
        units,
        stores,
        actor,
        category="caption",
        files={"caption-000.fr.txt": b"un chat sur un tapis\n"},
        data={"image": "https://images.example/photo-000.jpg", "language": "fr"},
    )
    async with units() as uow:
        await artifacts.add_relation(
            uow, source_id=edition, target_id=ids[0], type=RelationType.EXTENDS, actor=actor
        )
        await uow.commit()
    ref = [_global("Artifact", i) for i in ids]
    return await _create(
        units,
        actor,
        batches.BatchSpec(
            workspace=WORKSPACE,
            title=ARTIFACTS_TITLE,
            description="Seeded by `batchgraph demo`: jobs that read artifacts and make more.",
            definition={
                "recipe": {
                    "nodes": [{"name": "sums", "taskType": "checksum", "inputs": "{{item.docs}}"}]
                },
                "inputs": [{"docs": ref[:2]}, {"docs": ref[2:]}],
            },
        ),
    )


async def relate_report(
    units: Callable[[], UnitOfWork], stores: FileStores, *, actor: Actor, batch_id: int
) -> int:
    """A report that RELATES_TO the checksum batch's outputs: the top of the lineage."""
    async with units() as uow:
        outputs = await _outputs(uow, batch_id)
    report = await _artifact(
        units,
        stores,
        actor,
        category="report",
        files={"report.md": b"# Captions\n\nAll captions checked.\n"},
        data={"title": "Caption check"},
    )
    async with units() as uow:
        for target in outputs:
            await artifacts.add_relation(
                uow, source_id=report, target_id=target, type=RelationType.RELATES_TO, actor=actor
            )
        await uow.commit()
    return report


async def _outputs(uow: UnitOfWork, batch_id: int) -> list[int]:
    jobs = await uow.jobs.page(JobFilter(batch_id=batch_id), after=None, first=100)
    found = await uow.artifacts.outputs_of([j.id for j in jobs.items])
    return sorted(i for ids in found for i in ids)


def _global(kind: str, pk: int) -> str:
    return base64.b64encode(f"{kind}:{pk}".encode()).decode()
