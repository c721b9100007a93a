"""`batchgraph demo`: a workspace with real data to explore at once.

Seeds task types, a batch whose run is simulated through the real transition
service (most jobs complete, a few fail, their dependents are canceled), and a
second batch re-processing the failed part of the chain. The fleet that really
executes jobs arrives with the worker issue; until then the demo says so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from db.enums import CachePolicy, JobStatus, RerunMode
from db.repositories.job import JobFilter
from db.uow import UnitOfWork
from domain.auth.rules import Actor
from domain.batches import service as batches
from domain.jobs import execution, moves
from domain.jobs.moves import Move
from domain.jobs.rules import Initiator
from domain.tasktypes import service as tasktypes
from domain.tasktypes.rules import RevisionFields
from domain.workspaces import service as workspaces

WORKSPACE = "demo"
ITEMS = 20
FAILING = {3, 11, 17}  # input indexes whose resize fails in the simulated run


@dataclass(frozen=True, slots=True)
class DemoResult:
    created: bool
    first_batch_id: int | None = None
    second_batch_id: int | None = None


async def seed_demo(units: Callable[[], UnitOfWork], *, actor: Actor) -> DemoResult:
    async with units() as uow:
        if await uow.workspaces.name_exists(WORKSPACE):
            return DemoResult(created=False)
        await workspaces.create_workspace(uow, name=WORKSPACE, public=True, actor=actor)
        for name, schema in (
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
            ),
            ("make-thumbnail", {"type": "object", "required": ["source"]}),
        ):
            await tasktypes.create_task_type(
                uow,
                spec=tasktypes.TaskTypeSpec(
                    workspace=WORKSPACE,
                    name=name,
                    fields=RevisionFields(
                        description=f"Demo task type {name}",
                        parameters_schema=schema,
                        result_schema={"type": "object"},
                        implementation="external",
                        timeout_seconds=600,
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
                    "parameters": {"source": "{{item.url}}", "size": 128},
                },
            ]
        },
        "inputs": [
            {"url": f"https://images.example/photo-{i:03d}.jpg", "width": 800} for i in range(ITEMS)
        ],
    }
    first = await _create(
        units,
        actor,
        batches.BatchSpec(
            workspace=WORKSPACE,
            title="Nightly resize (simulated run)",
            definition=definition,
            description="Seeded by `batchgraph demo`: its run was simulated.",
        ),
    )
    await _simulate_run(units, first)
    second = await _create(
        units,
        actor,
        batches.BatchSpec(
            workspace=WORKSPACE,
            title="Nightly resize, failed part again",
            previous=batches.PreviousBatch(root_batch_id=first, rerun=RerunMode.FAILED),
        ),
    )
    return DemoResult(created=True, first_batch_id=first, second_batch_id=second)


async def _create(units: Callable[[], UnitOfWork], actor: Actor, spec: batches.BatchSpec) -> int:
    # The demo creates recipes and jobs in-process: its units of work send nothing.
    async with units() as uow:
        created = await batches.create_batch(uow, spec=spec, actor=actor)
        await uow.commit()
    assert created.batch is not None
    batch_id = created.batch.id
    cursor: int | None = 0
    while cursor is not None:
        async with units() as uow:
            outcome = await batches.create_chunk(uow, batch_id=batch_id, cursor=cursor)
            await uow.commit()
        cursor = outcome.next_cursor
    return batch_id


async def _simulate_run(units: Callable[[], UnitOfWork], batch_id: int) -> None:
    """Walk every queued job through RUNNING → COMPLETED (or FAILED), as a pull worker
    would; completions queue the dependents, which the next round takes."""
    while True:
        async with units() as uow:
            page = await uow.jobs.page(
                JobFilter(batch_id=batch_id, statuses=(JobStatus.QUEUED,)), after=None, first=1000
            )
            if not page.items:
                return
            started = await moves.apply(
                uow,
                [
                    Move(j.id, JobStatus.RUNNING, Initiator.WORKER, worker="demo-worker")
                    for j in page.items
                ],
            )
            recipes = await uow.batches.get_recipes([j.recipe_id for j in page.items])
            finishes = []
            for job, recipe in zip(page.items, recipes, strict=True):
                fails = job.node == "resize" and recipe is not None and recipe.position in FAILING
                outcome = (
                    execution.Outcome(
                        failure=execution.TaskFailure(
                            "SOURCE_UNREADABLE", "404 from the image source", "DOMAIN"
                        )
                    )
                    if fails
                    else execution.Outcome(result={"url": f"{job.parameters.get('url', '')}.out"})
                )
                attempt = next(m.attempt for m in started.moved if m.id == job.id)
                finishes.append(execution.Finish(job.id, attempt, "demo-worker", outcome))
            await execution.finish(uow, finishes)
            await uow.commit()
