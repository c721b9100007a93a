"""Batches (SPEC §1): validation, creation in idempotent chunks, edit, cancel."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from db.enums import JobStatus
from db.models import Batch, Job, JobDependency, JobEvent, Recipe
from db.session import Database
from db.uow import UnitOfWork
from domain.batches import service as batches
from domain.batches.rules import CHUNK_SIZE, MAX_INPUTS
from domain.errors import InvalidTransitionError, ValidationFailedError
from tests.conftest import row_counts
from tests.factories import (
    ADMIN,
    RESIZE_SCHEMA,
    RecordingDispatcher,
    live_nodes,
    make_batch,
    make_task_type,
    run_creation,
    two_node_definition,
)

ITEMS = [{"url": f"https://x/{i}.png", "width": 10 + i} for i in range(3)]


@pytest.fixture
async def task_types(db: Database) -> None:
    await make_task_type(db, "resize", parameters_schema=RESIZE_SCHEMA)
    await make_task_type(
        db, "thumb", parameters_schema={"type": "object", "required": ["source", "size"]}
    )


async def validate(db: Database, definition: Any, **spec: Any) -> batches.Validation:
    async with UnitOfWork(db.write_session) as uow:  # never committed
        return await batches.validate_batch(
            uow,
            spec=batches.BatchSpec(workspace="default", title="t", definition=definition, **spec),
            actor=ADMIN,
        )


async def test_a_valid_definition(db: Database, task_types: None) -> None:
    found = await validate(db, two_node_definition(ITEMS))
    assert found.is_valid, found.errors
    assert found.estimated_recipes == 3
    assert [(n.name, n.task_type, n.revision) for n in found.nodes] == [
        ("resize", "resize", 1),
        ("thumb", "thumb", 1),
    ]
    assert found.jobs_by_node() == {"resize": 3, "thumb": 3}
    # New task types are unavailable: a warning, not an error (their jobs wait).
    assert {w.name for w in found.warnings} == {"TASK_TYPE_UNAVAILABLE"}


@pytest.mark.parametrize(
    ("definition", "name", "path"),
    [
        ([1, 2], "INVALID_BATCH_DEFINITION", "$"),
        ({"recipe": {"nodes": []}, "inputs": [{}]}, "INVALID_BATCH_DEFINITION", "$.recipe.nodes"),
        (
            {
                "recipe": {"nodes": [{"name": "a", "taskType": "resize"}]},
                "inputs": [{}],
                "extra": 1,
            },
            "INVALID_BATCH_DEFINITION",
            "$",
        ),
        (
            {
                "recipe": {"nodes": [{"name": "a", "taskType": "resize", "colour": "red"}]},
                "inputs": [{}],
            },
            "INVALID_BATCH_DEFINITION",
            "$.recipe.nodes[0]",
        ),
        (
            {
                "recipe": {
                    "nodes": [
                        {"name": "a", "taskType": "resize", "dependsOn": ["b"]},
                        {"name": "b", "taskType": "resize", "dependsOn": ["a"]},
                    ]
                },
                "inputs": [{}],
            },
            "INVALID_BATCH_DEFINITION",
            "$.recipe.nodes",
        ),
        (
            {
                "recipe": {"nodes": [{"name": "a", "taskType": "resize", "dependsOn": ["zz"]}]},
                "inputs": [{}],
            },
            "INVALID_BATCH_DEFINITION",
            "$.recipe.nodes[0].dependsOn[0]",
        ),
        (
            {
                "recipe": {
                    "nodes": [
                        {"name": "a", "taskType": "resize"},
                        {"name": "a", "taskType": "thumb"},
                    ]
                },
                "inputs": [{}],
            },
            "INVALID_BATCH_DEFINITION",
            "$.recipe.nodes[1].name",
        ),
        (
            {"recipe": {"nodes": [{"name": "a", "taskType": "nope"}]}, "inputs": [{}]},
            "UNKNOWN_TASK_TYPE",
            "$.recipe.nodes[0].taskType",
        ),
        (
            {
                "recipe": {"nodes": [{"name": "a", "taskType": "resize", "revision": 9}]},
                "inputs": [{}],
            },
            "UNKNOWN_TASK_TYPE",
            "$.recipe.nodes[0].revision",
        ),
        (
            {"recipe": {"nodes": [{"name": "a", "taskType": "resize"}]}, "inputs": []},
            "NO_RECIPES",
            None,
        ),
        (
            {"recipe": {"nodes": [{"name": "a", "taskType": "resize"}]}},
            "INVALID_BATCH_DEFINITION",
            "$",
        ),
    ],
)
async def test_definition_errors(
    db: Database, task_types: None, definition: Any, name: str, path: str | None
) -> None:
    found = await validate(db, definition)
    assert not found.is_valid
    assert (found.errors[0].name, found.errors[0].path) == (name, path), found.errors


async def test_too_many_inputs_has_its_own_code(db: Database, task_types: None) -> None:
    found = await validate(db, two_node_definition([{}] * (MAX_INPUTS + 1)))
    assert [e.name for e in found.errors] == ["TOO_MANY_INPUTS"]


async def test_parameters_are_checked_per_item_and_node(db: Database, task_types: None) -> None:
    items = [ITEMS[0], {"url": 5, "width": 0}, {"width": 3}]
    found = await validate(db, two_node_definition(items))
    problems = {(e.input_index, e.node, e.path) for e in found.errors}
    assert problems == {
        (1, "resize", "$.url"),
        (1, "resize", "$.width"),
        (2, "resize", "$"),  # url missing
        (2, "thumb", "$"),  # {{item.url}} names a missing field
    }
    assert {e.name for e in found.errors} == {"PARAMETERS_INVALID"}


async def test_bad_configuration(db: Database, task_types: None) -> None:
    found = await validate(db, two_node_definition(ITEMS), priority=5000, max_parallel_jobs=0)
    assert {(e.name, e.path) for e in found.errors} == {
        ("INVALID_BATCH_CONFIGURATION", "$.priority"),
        ("INVALID_BATCH_CONFIGURATION", "$.maxParallelJobs"),
    }


async def test_invalid_creation_writes_nothing(db: Database, task_types: None) -> None:
    before = await row_counts(db)
    with pytest.raises(batches.InvalidBatchError) as refused:
        await make_batch(db, two_node_definition([{"width": 0}]))
    assert refused.value.validation.errors
    assert await row_counts(db) == before


async def test_dry_run_writes_nothing_and_returns_the_plan(db: Database, task_types: None) -> None:
    before = await row_counts(db)
    dispatcher = RecordingDispatcher()
    async with UnitOfWork(db.write_session, dispatcher=dispatcher) as uow:
        created = await batches.create_batch(
            uow,
            spec=batches.BatchSpec(
                workspace="default", title="t", definition=two_node_definition(ITEMS)
            ),
            actor=ADMIN,
            dry_run=True,
        )
        await uow.commit()
    assert created.batch is None
    assert [r.nodes for r in created.validation.plan] == [("resize", "thumb")] * 3
    assert dispatcher.sent == []
    assert await row_counts(db) == before


async def _counts(db: Database, batch_id: int) -> dict[str, Any]:
    async with db.read_session() as s:
        recipes = await s.scalar(
            select(func.count()).select_from(Recipe).where(Recipe.batch_id == batch_id)
        )
        jobs = dict(
            (
                await s.execute(
                    select(Job.status, func.count())
                    .where(Job.batch_id == batch_id)
                    .group_by(Job.status)
                )
            ).all()
        )
        events = await s.scalar(
            select(func.count()).select_from(JobEvent).where(JobEvent.batch_id == batch_id)
        )
        deps = await s.scalar(
            select(func.count())
            .select_from(JobDependency)
            .join(Job, Job.id == JobDependency.job_id)
            .where(Job.batch_id == batch_id)
        )
        batch = await s.scalar(select(Batch).where(Batch.id == batch_id))
    return {
        "recipes": recipes,
        "jobs": jobs,
        "events": events,
        "deps": deps,
        "nodes": await live_nodes(db, batch_id),
        "batch": batch,
    }


async def test_creation_in_chunks_makes_every_recipe_and_job_once(
    db: Database, task_types: None
) -> None:
    items = [{"url": f"u{i}", "width": 1} for i in range(CHUNK_SIZE + 5)]
    dispatcher = RecordingDispatcher()
    async with UnitOfWork(db.write_session, dispatcher=dispatcher) as uow:
        created = await batches.create_batch(
            uow,
            spec=batches.BatchSpec(
                workspace="default", title="big", definition=two_node_definition(items)
            ),
            actor=ADMIN,
        )
        assert dispatcher.sent == []  # nothing is sent before the commit
        await uow.commit()
    batch_id = created.batch.id  # type: ignore[union-attr]
    assert dispatcher.sent == [("batches.create_chunk", (batch_id, 0))]
    first = await _counts(db, batch_id)
    assert first["batch"].is_creation_done is False
    assert first["batch"].root_batch_id == batch_id
    assert first["recipes"] == 0

    assert await run_creation(db, batch_id) == 2
    found = await _counts(db, batch_id)
    n = len(items)
    assert found["batch"].is_creation_done is True
    assert (found["batch"].recipes_total, found["batch"].recipes_estimated) == (n, n)
    assert found["recipes"] == n
    # Roots are dispatched as they are created: PENDING, then QUEUED.
    assert found["jobs"] == {JobStatus.QUEUED: n, JobStatus.BLOCKED: n}
    assert found["deps"] == n
    assert found["events"] == 3 * n
    assert (found["nodes"]["resize"].queued, found["nodes"]["thumb"].blocked) == (n, n)

    # A redelivered first chunk, and one past the end, change nothing.
    assert await run_creation(db, batch_id, cursor=0) == 1
    assert await run_creation(db, batch_id, cursor=CHUNK_SIZE) == 1
    again = await _counts(db, batch_id)
    assert (again["recipes"], again["jobs"], again["events"]) == (
        found["recipes"],
        found["jobs"],
        found["events"],
    )


async def test_a_chunk_that_crashes_midway_rolls_back_and_then_runs_once(
    db: Database, task_types: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch = await make_batch(db, two_node_definition(ITEMS), finish_creation=False)
    from domain.jobs import moves

    real = moves.send_queued

    async def crash(*args: Any) -> Any:
        raise ConnectionError("worker died midway")

    # Recipes, jobs, dependencies and history are written; the chunk dies after them.
    monkeypatch.setattr(moves, "send_queued", crash)
    with pytest.raises(ConnectionError):
        await run_creation(db, batch.id)
    midway = await _counts(db, batch.id)
    assert (midway["recipes"], midway["jobs"]) == (0, {})  # rolled back entirely
    monkeypatch.setattr(moves, "send_queued", real)
    await run_creation(db, batch.id)
    found = await _counts(db, batch.id)
    assert found["recipes"] == 3
    assert found["jobs"] == {JobStatus.QUEUED: 3, JobStatus.BLOCKED: 3}


async def test_parameters_are_rendered_from_the_item(db: Database, task_types: None) -> None:
    batch = await make_batch(db, two_node_definition(ITEMS[:1]))
    async with db.read_session() as s:
        params = dict(
            (
                await s.execute(select(Job.node, Job.parameters).where(Job.batch_id == batch.id))
            ).all()
        )
    assert params == {"resize": ITEMS[0], "thumb": {"source": ITEMS[0]["url"], "size": 64}}


async def test_edit_changes_only_title_description_and_configuration(
    db: Database, task_types: None
) -> None:
    batch = await make_batch(db, two_node_definition(ITEMS))
    async with UnitOfWork(db.write_session) as uow:
        edited = await batches.edit_batch(
            uow, batch_id=batch.id, edit=batches.BatchEdit(title="new", priority=7), actor=ADMIN
        )
        await uow.commit()
    assert (edited.title, edited.priority, edited.recipe) == ("new", 7, batch.recipe)
    async with UnitOfWork(db.write_session) as uow:
        with pytest.raises(ValidationFailedError) as bad:
            await batches.edit_batch(
                uow, batch_id=batch.id, edit=batches.BatchEdit(title=" "), actor=ADMIN
            )
    assert bad.value.violations[0].path == "$.title"


async def test_cancel_batch_cancels_every_unfinished_job_once(
    db: Database, task_types: None
) -> None:
    batch = await make_batch(db, two_node_definition(ITEMS))
    async with UnitOfWork(db.write_session) as uow:
        _, canceled = await batches.cancel_batch(uow, batch_id=batch.id, reason=None, actor=ADMIN)
        await uow.commit()
    assert canceled == 6
    found = await _counts(db, batch.id)
    assert found["jobs"] == {JobStatus.CANCELED: 6}
    assert found["nodes"]["resize"].canceled == 3
    assert found["nodes"]["thumb"].blocked == 0
    async with UnitOfWork(db.write_session) as uow:
        with pytest.raises(InvalidTransitionError):
            await batches.cancel_batch(uow, batch_id=batch.id, reason=None, actor=ADMIN)


async def test_a_new_priority_reaches_the_jobs_still_waiting(
    db: Database, task_types: None
) -> None:
    batch = await make_batch(db, two_node_definition(ITEMS))
    async with UnitOfWork(db.write_session) as uow:
        await batches.edit_batch(
            uow, batch_id=batch.id, edit=batches.BatchEdit(priority=42), actor=ADMIN
        )
        await uow.commit()
    async with db.read_session() as s:
        priorities = set(await s.scalars(select(Job.priority).where(Job.batch_id == batch.id)))
    assert priorities == {42}


async def test_a_node_that_changes_task_type_is_a_mismatched_recipe(
    db: Database, task_types: None
) -> None:
    first = await make_batch(db, two_node_definition(ITEMS))
    swapped = {"recipe": {"nodes": [{"name": "resize", "taskType": "thumb"}]}}
    with pytest.raises(batches.InvalidBatchError) as refused:
        await make_batch(db, swapped, previous=batches.PreviousBatch(root_batch_id=first.id))
    assert [e.name for e in refused.value.validation.errors] == ["MISMATCHED_RECIPE"]


async def test_reprocessing_an_unknown_chain_is_prev_batch_not_found(
    db: Database, task_types: None
) -> None:
    async with UnitOfWork(db.write_session) as uow:
        with pytest.raises(batches.InvalidBatchError) as refused:
            await batches.reprocess_batch(
                uow,
                root_batch_id=987654,
                rerun=batches.RerunMode.ALL,
                nodes=(),
                title=None,
                description="",
                recipe=None,
                priority=0,
                actor=ADMIN,
            )
    assert [e.name for e in refused.value.validation.errors] == ["PREV_BATCH_NOT_FOUND"]
