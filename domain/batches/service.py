"""Batch use cases (Scale): validate, create (then recipes and jobs in chunks), edit,
cancel, re-process a chain."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Protocol

from db.enums import CachePolicy, JobStatus, RerunMode
from db.models import Batch, BatchNode, TaskType
from db.repositories.artifact import ArtifactRepository
from db.repositories.batch import BatchRepository, ItemRow
from db.repositories.job import JobRepository
from db.repositories.moves import NodePlan
from db.repositories.task_type import TaskTypeRepository
from db.repositories.workspace import WorkspaceRepository
from db.uow import UnitOfWork
from domain import jsonschemas, plural
from domain.auth.rules import Actor, require_writer
from domain.batches import rules
from domain.batches.rules import (
    CHUNK_SIZE,
    JSON,
    Issue,
    IssueName,
    NodeDiff,
    NodeSpec,
    PinnedNode,
)
from domain.errors import (
    DomainError,
    ErrorCode,
    InvalidTransitionError,
    NotFoundError,
    ValidationFailedError,
    Violation,
    raise_if_invalid,
)
from domain.jobs import moves, revisions
from domain.jobs import service as jobs
from domain.jobs.rules import check_reason
from domain.text import check_text
from domain.workspaces.service import can_read, get_readable

CREATE_CHUNK = "batches.create_chunk"
MAX_TITLE = 200
MAX_DESCRIPTION = 10_000
MAX_PARAMETER_ISSUES = 100


class Repositories(Protocol):
    @property
    def workspaces(self) -> WorkspaceRepository: ...
    @property
    def task_types(self) -> TaskTypeRepository: ...
    @property
    def batches(self) -> BatchRepository: ...
    @property
    def jobs(self) -> JobRepository: ...
    @property
    def artifacts(self) -> ArtifactRepository: ...


@dataclass(frozen=True, slots=True)
class PreviousBatch:
    root_batch_id: int
    rerun: RerunMode = RerunMode.ALL
    nodes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class BatchSpec:
    workspace: str
    title: str
    description: str = ""
    definition: JSON | None = None
    previous: PreviousBatch | None = None
    priority: int = 0
    cache_policy: CachePolicy | None = None
    max_parallel_jobs: int | None = None


@dataclass(frozen=True, slots=True)
class PlannedRecipe:
    position: int
    item: JSON
    nodes: tuple[str, ...]
    previous_recipe_id: int | None = None


@dataclass
class Validation:
    """What validation found. Expected outcomes are data: errors and warnings."""

    errors: list[Issue] = field(default_factory=list)
    warnings: list[Issue] = field(default_factory=list)
    nodes: list[PinnedNode] = field(default_factory=list)
    estimated_recipes: int = 0
    previous_batch: Batch | None = None
    diff: list[NodeDiff] = field(default_factory=list)
    plan: list[PlannedRecipe] = field(default_factory=list)
    workspace_id: int | None = None
    task_types: dict[str, TaskType] = field(default_factory=dict)
    parameter_schemas: dict[str, JSON] = field(default_factory=dict)

    @property
    def is_valid(self) -> bool:
        return not self.errors

    def jobs_by_node(self) -> dict[str, int]:
        counts = Counter(node for recipe in self.plan for node in recipe.nodes)
        return {n.name: counts.get(n.name, 0) for n in self.nodes}


class InvalidBatchError(DomainError):
    """createBatch refused: the validation (errors and warnings) says why."""

    code: ClassVar[ErrorCode] = ErrorCode.VALIDATION_FAILED

    def __init__(self, validation: Validation) -> None:
        super().__init__(
            f"The batch is not valid ({plural.count(len(validation.errors), 'error')})"
        )
        self.validation = validation


@dataclass(frozen=True, slots=True)
class Created:
    batch: Batch | None  # None for a dry run
    validation: Validation


async def validate_batch(
    repos: Repositories, *, spec: BatchSpec, actor: Actor | None, lock: bool = False
) -> Validation:
    """Everything createBatch checks, without writing. ``lock`` (creation only) locks the
    chain's latest batch so that two re-processings of one chain serialise."""
    found = Validation()
    workspace = await get_readable(repos.workspaces, name=spec.workspace, actor=actor)
    found.workspace_id = workspace.id
    found.errors += _configuration_issues(spec)
    definition = rules.Definition()
    if spec.definition is not None:
        definition = rules.parse_definition(spec.definition)
        found.errors += definition.issues
        if definition.issues:
            return found
    if spec.previous is None:
        await _validate_new(repos, found, definition, workspace.id, actor)
    else:
        await _validate_reprocessing(
            repos, found, definition, spec.previous, workspace.id, lock, actor
        )
    if found.is_valid and not found.plan:
        found.errors.append(Issue(IssueName.NO_RECIPES, "the batch would create no recipes"))
    return found


def _configuration_issues(spec: BatchSpec) -> list[Issue]:
    bad = IssueName.INVALID_BATCH_CONFIGURATION
    issues = []
    issues += [
        Issue(bad, v.message, v.path)
        for v in check_text(spec.title, "$.title", max_length=MAX_TITLE, required=True)
        + check_text(spec.description, "$.description", max_length=MAX_DESCRIPTION, multiline=True)
    ]
    if not -1000 <= spec.priority <= 1000:
        issues.append(Issue(bad, "priority must be between -1000 and 1000", "$.priority"))
    if spec.max_parallel_jobs is not None and spec.max_parallel_jobs < 1:
        issues.append(Issue(bad, "maxParallelJobs must be at least 1", "$.maxParallelJobs"))
    rerun_nodes = spec.previous is not None and spec.previous.rerun is RerunMode.NODES
    if rerun_nodes and spec.previous is not None and not spec.previous.nodes:
        issues.append(Issue(bad, "rerun NODES needs the nodes to run", "$.previousBatch.nodes"))
    return issues


async def _validate_new(
    repos: Repositories,
    found: Validation,
    definition: rules.Definition,
    workspace_id: int,
    actor: Actor | None,
) -> None:
    if not definition.nodes or definition.inputs is None:
        found.errors.append(
            Issue(
                IssueName.INVALID_BATCH_DEFINITION,
                "a new batch needs a definition with a recipe and inputs"
                " (or previousBatch, to re-process a chain)",
                "$",
            )
        )
        return
    await _pin(repos, found, definition.nodes, workspace_id)
    if not found.is_valid:
        return
    found.plan = [
        PlannedRecipe(position=i, item=item, nodes=tuple(n.name for n in found.nodes))
        for i, item in enumerate(definition.inputs)
    ]
    found.estimated_recipes = len(found.plan)
    await asyncio.to_thread(_check_parameters, found)
    await _check_inputs(repos, found, actor)


async def _validate_reprocessing(
    repos: Repositories,
    found: Validation,
    definition: rules.Definition,
    previous_spec: PreviousBatch,
    workspace_id: int,
    lock: bool,
    actor: Actor | None,
) -> None:
    if definition.inputs is not None:
        found.errors.append(
            Issue(
                IssueName.INVALID_BATCH_DEFINITION,
                "re-processing takes its inputs from the previous batch",
                "$.inputs",
            )
        )
        return
    root = await repos.batches.get(previous_spec.root_batch_id)
    if root is None or root.root_batch_id != root.id or root.workspace_id != workspace_id:
        found.errors.append(
            Issue(
                IssueName.PREV_BATCH_NOT_FOUND,
                f"no chain has root batch {previous_spec.root_batch_id} in this workspace",
                "$.previousBatch.rootBatch",
            )
        )
        return
    previous = await repos.batches.latest_in_chain(root.id, for_update=lock)
    if previous is None:
        # We waited on the lock while another re-processing superseded that batch;
        # the chain's current batch is now the one it created (still creating).
        previous = await repos.batches.latest_in_chain(root.id, for_update=lock)
    if previous is None:  # pragma: no cover - a chain always has its current batch
        raise NotFoundError(f"chain {root.id} has no current batch")
    found.previous_batch = previous
    if not previous.is_creation_done:
        found.errors.append(
            Issue(
                IssueName.PREV_BATCH_STILL_CREATING,
                f"batch {previous.id} is still creating its recipes and jobs",
            )
        )
        return
    before = [PinnedNode.from_json(n) for n in previous.recipe["nodes"]]
    specs = definition.nodes or [
        NodeSpec(n.name, n.task_type, n.depends_on, n.parameters, inputs=n.inputs) for n in before
    ]
    await _pin(repos, found, specs, workspace_id)
    if not found.is_valid:
        return
    mismatches = rules.mismatched(before, found.nodes)
    for problem in mismatches:
        found.errors.append(Issue(IssueName.MISMATCHED_RECIPE, problem, "$.recipe"))
    # A diff compares two runs of the same recipe; across a mismatch it means nothing.
    found.diff = [] if mismatches else rules.diff_recipes(before, found.nodes)
    unknown = set(previous_spec.nodes) - {n.name for n in found.nodes}
    if unknown:
        found.warnings.append(
            Issue(
                IssueName.NODES_NOT_IN_RECIPE,
                "not in the recipe: " + ", ".join(sorted(unknown)),
                "$.previousBatch.nodes",
            )
        )
    if not found.is_valid:
        return
    always = {d.node for d in found.diff if d.status.value in ("NEW", "CHANGED")}
    statuses = await repos.jobs.statuses_by_recipe(previous.id)
    recipes = await repos.batches.all_recipes(previous.id)
    found.estimated_recipes = previous.recipes_total
    position = 0
    for recipe in recipes:
        before_statuses = statuses.get(recipe.id, {})
        if previous_spec.rerun is RerunMode.FAILED and not (
            {JobStatus.FAILED, JobStatus.CANCELED} & set(before_statuses.values())
        ):
            continue
        run = rules.nodes_to_run(
            found.nodes,
            mode=previous_spec.rerun,
            forced=previous_spec.nodes,
            always=always,
            previous_statuses={k: v.value for k, v in before_statuses.items()},
        )
        if run:
            ordered = tuple(n.name for n in found.nodes if n.name in run)
            found.plan.append(PlannedRecipe(position, recipe.item, ordered, recipe.id))
            position += 1
    await asyncio.to_thread(_check_parameters, found)
    await _check_inputs(repos, found, actor)


async def _check_inputs(repos: Repositories, found: Validation, actor: Actor | None) -> None:
    """Each job's input artifacts (a node's ``inputs`` over the item): ids of artifacts
    the caller may read, with every file uploaded. Two queries, whatever the count."""
    nodes = [n for n in found.nodes if n.inputs is not None]
    if not nodes:
        return
    wanted: dict[int, list[tuple[int, str]]] = {}
    issues: list[Issue] = []
    for index, recipe in enumerate(found.plan):
        for node in nodes:
            if node.name not in recipe.nodes:
                continue
            ids, problems = rules.render_inputs(node.inputs, recipe.item)
            issues += [
                Issue(IssueName.INPUTS_INVALID, p, "$.inputs", node.name, index) for p in problems
            ]
            for i in ids:
                wanted.setdefault(i, []).append((index, node.name))
    rows = await repos.artifacts.get_many(sorted(wanted))
    readable = {
        w.id
        for w in await repos.workspaces.get_many(
            sorted({r.workspace_id for r in rows if r is not None})
        )
        if w is not None and can_read(w, actor)
    }
    present = {r.id for r in rows if r is not None and r.workspace_id in readable}
    incomplete = await repos.artifacts.incomplete(sorted(present)) if present else set()
    for artifact_id, uses in sorted(wanted.items()):
        index, node_name = uses[0]
        if artifact_id not in present:
            problem = f"no artifact {artifact_id} you may read"
        elif artifact_id in incomplete:
            problem = f"artifact {artifact_id} still has files to upload"
        else:
            continue
        issues.append(Issue(IssueName.INPUTS_INVALID, problem, "$.inputs", node_name, index))
    found.errors += issues[:MAX_PARAMETER_ISSUES]


async def _pin(
    repos: Repositories, found: Validation, specs: list[NodeSpec], workspace_id: int
) -> None:
    """Resolve each node's task type (by name, in the workspace) and pin its revision."""
    for i, spec in enumerate(specs):
        path = f"$.recipe.nodes[{i}].taskType"
        task_type = await repos.task_types.get_by_name(workspace_id, spec.task_type)
        if task_type is None:
            found.errors.append(
                Issue(IssueName.UNKNOWN_TASK_TYPE, f"no task type {spec.task_type!r}", path)
            )
            continue
        number = spec.revision or task_type.latest_revision
        revision = await repos.task_types.get_revision(task_type.id, number)
        if revision is None:
            found.errors.append(
                Issue(
                    IssueName.UNKNOWN_TASK_TYPE,
                    f"task type {spec.task_type!r} has no revision {number}",
                    f"$.recipe.nodes[{i}].revision",
                )
            )
            continue
        if not task_type.available:
            found.warnings.append(
                Issue(
                    IssueName.TASK_TYPE_UNAVAILABLE,
                    f"task type {spec.task_type!r} is not available; its jobs will wait",
                    path,
                )
            )
        found.task_types[spec.name] = task_type
        found.nodes.append(
            PinnedNode(
                name=spec.name,
                task_type=task_type.name,
                task_type_id=task_type.id,
                revision=revision.revision,
                revision_id=revision.id,
                depends_on=spec.depends_on,
                parameters=spec.parameters,
                inputs=spec.inputs,
            )
        )
        found.parameter_schemas[spec.name] = revision.parameters_schema
    # Dependencies first: jobs get increasing ids along the DAG, so locking jobs in
    # id order (as every transition does) also locks upstream before downstream.
    if found.is_valid:
        found.nodes = rules.topological(found.nodes)


_ANNOTATIONS = frozenset({"$schema", "$id", "$comment", "title", "description"})


def _accepts_any_object(schema: object) -> bool:
    """The default ``{"type": "object"}`` (or ``{}``): nothing to ask of an object.

    Skipping these keeps a 100,000-item batch of such a task type from building
    100,000 validator instances only to find nothing.
    """
    if schema is True:
        return True
    if not isinstance(schema, dict):
        return False
    rest = {k: v for k, v in schema.items() if k not in _ANNOTATIONS}
    return rest in ({}, {"type": "object"})


def _check_parameters(found: Validation) -> None:
    """Each input item's parameters, per node, against the pinned revision's schema.

    Validators are built once per node; reporting stops after MAX_PARAMETER_ISSUES.
    Callers run it in a thread: up to 100,000 items is CPU work that must not stall
    the event loop (RE2 releases the GIL while it matches).
    """
    by_name = {n.name: n for n in found.nodes}
    validators = {
        name: jsonschemas.compile_schema(schema)
        for name, schema in found.parameter_schemas.items()
        if not _accepts_any_object(schema)
    }
    issues: list[Issue] = []
    more = 0
    for index, recipe in enumerate(found.plan):
        for name in recipe.nodes:
            params, missing = rules.render_parameters(by_name[name].parameters, recipe.item)
            problems = [(f"$: no value for {{{{{m}}}}} in the input item", "$") for m in missing]
            if not isinstance(params, dict):
                problems.append(("parameters must be a JSON object", "$"))
            elif name in validators:
                problems += [(v.message, v.path) for v in validators[name].violations(params)]
            for message, path in problems:
                if len(issues) < MAX_PARAMETER_ISSUES:
                    issues.append(Issue(IssueName.PARAMETERS_INVALID, message, path, name, index))
                else:
                    more += 1
    found.errors += issues
    if more:
        found.errors.append(
            Issue(IssueName.PARAMETERS_INVALID, f"… and {more} more parameter problems")
        )


async def create_batch(
    uow: UnitOfWork,
    *,
    spec: BatchSpec,
    actor: Actor | None,
    dry_run: bool = False,
    inline_limit: int = CHUNK_SIZE,
) -> Created:
    """Validate, supersede the chain's latest batch (re-processing), and store the batch,
    its nodes and its input items in this transaction; recipes and jobs follow in the
    background, in chunks. A dry run returns the exact plan and writes nothing."""
    who = require_writer(actor)
    validation = await validate_batch(uow, spec=spec, actor=actor, lock=not dry_run)
    if not validation.is_valid:
        raise InvalidBatchError(validation)
    if dry_run:
        return Created(batch=None, validation=validation)
    assert validation.workspace_id is not None
    previous = validation.previous_batch
    batch = Batch(
        workspace_id=validation.workspace_id,
        title=spec.title.strip(),
        description=spec.description,
        recipe={"nodes": [n.to_json() for n in validation.nodes]},
        priority=spec.priority,
        cache_policy=spec.cache_policy,
        max_parallel_jobs=spec.max_parallel_jobs,
        recipes_estimated=validation.estimated_recipes,
        created_by=who.owner,
    )
    uow.batches.add(batch)
    await uow.batches.flush()
    if previous is None:
        batch.root_batch_id = batch.id
    else:
        previous.is_superseded = True
        previous.superseded_at = datetime.now(UTC)
        batch.root_batch_id = previous.root_batch_id
        batch.superseded_batch_id = previous.id
    for position, node in enumerate(validation.nodes):
        uow.batches.add(
            BatchNode(
                batch_id=batch.id,
                node=node.name,
                task_type_revision_id=node.revision_id,
                position=position,
            )
        )
    await uow.batches.flush()
    every_node = tuple(n.name for n in validation.nodes)
    await uow.batches.add_items(
        batch.id,
        [
            # None: the whole recipe (the common case), stored once in the batch.
            ItemRow(r.position, r.item, r.previous_recipe_id, None)
            if r.nodes == every_node
            else ItemRow(r.position, r.item, r.previous_recipe_id, list(r.nodes))
            for r in validation.plan
        ],
    )
    if len(validation.plan) <= inline_limit:
        # Small batches are created at once: their jobs can start without waiting for
        # a message to reach a worker first.
        revisions.remember_shape(batch.id, batch.recipe)
        await _create_range(uow, batch, cursor=0, total=len(validation.plan))
    else:
        uow.send_after_commit(CREATE_CHUNK, batch.id, 0)
    return Created(batch=batch, validation=validation)


@dataclass(frozen=True, slots=True)
class ChunkOutcome:
    created_recipes: int
    created_jobs: int
    next_cursor: int | None  # None: creation is done (or nothing was to be done)


async def create_chunk(uow: UnitOfWork, *, batch_id: int, cursor: int) -> ChunkOutcome:
    """Create the recipes and jobs for input items ``cursor … cursor+CHUNK_SIZE-1``.

    Idempotent: the batch row is locked and its cursor moves in the same
    transaction, so a redelivered message (its cursor behind the batch's) does
    nothing, and a crash midway rolls the whole chunk back; the unique keys on
    recipes and jobs are a second guard. The rows are made in the database (INSERT
    … SELECT from the stored items): a few statements per chunk, whatever its size.
    """
    batch = await uow.batches.get(batch_id, for_update=True)
    if batch is None or batch.is_creation_done:
        return ChunkOutcome(0, 0, None)
    if batch.creation_cursor != cursor:
        # A redelivered message: this chunk was committed, but the worker may have died
        # before sending the next one. Send it (again): a duplicate finds the cursor
        # moved on and does nothing, so creation can never stall here.
        ahead = batch.creation_cursor
        if cursor < ahead:
            uow.send_after_commit(CREATE_CHUNK, batch_id, ahead)
        return ChunkOutcome(0, 0, None)
    return await _create_range(
        uow, batch, cursor=cursor, total=await uow.batches.item_count(batch_id)
    )


async def _create_range(uow: UnitOfWork, batch: Batch, *, cursor: int, total: int) -> ChunkOutcome:
    """One chunk of a batch this transaction holds (locked, or just inserted)."""
    batch_id = batch.id
    stop = cursor if batch.canceled_at else min(cursor + CHUNK_SIZE, total)
    done = stop >= total or batch.canceled_at is not None
    next_cursor = None if done else stop
    if next_cursor is not None:
        # Queued before this chunk's jobs.run messages: the next chunk does not wait
        # behind them (the broker's queue is first in, first out).
        uow.send_after_commit(CREATE_CHUNK, batch_id, next_cursor)
    created = 0
    if stop > cursor:
        nodes = [PinnedNode.from_json(r) for r in batch.recipe["nodes"]]
        known = await revisions.revisions(uow, [n.revision_id for n in nodes])
        # Ready jobs are queued as they are created (their history shows the dispatch)
        # unless the batch caps its running jobs or a node cannot run on the fleet:
        # those are left PENDING for dispatch, which knows what to do with them.
        broken = await moves.broken_revisions(uow, known.values())
        queue_now = batch.max_parallel_jobs is None
        rendered: list[tuple[int, str, Any]] = []
        inputs: list[tuple[int, str, int]] = []
        if any(n.parameters is not None or n.inputs is not None for n in nodes):
            for position, item in await uow.creation.items(batch_id, cursor, stop):
                for n in nodes:
                    if n.parameters is not None:
                        params, _ = rules.render_parameters(n.parameters, item)
                        rendered.append((position, n.name, params))
                    if n.inputs is not None:
                        ids, _ = rules.render_inputs(n.inputs, item)
                        inputs += [(position, n.name, i) for i in ids]
        made = await uow.creation.create(
            batch_id=batch_id,
            workspace_id=batch.workspace_id,
            priority=batch.priority,
            start=cursor,
            stop=stop,
            nodes=[
                NodePlan(
                    name=n.name,
                    revision_id=n.revision_id,
                    max_attempts=known[n.revision_id].max_attempts,
                    depends_on=n.depends_on,
                    templated=n.parameters is not None,
                    queue_now=queue_now and n.revision_id not in broken,
                )
                for n in nodes
            ],
            rendered=rendered,
            inputs=inputs,
            dispatched=moves.dispatched_reason(),
        )
        created = made.jobs
        await moves.send_queued(uow, made.queued)
        if not queue_now or broken:
            await moves.dispatch(uow, batch_id=batch_id, cap=batch.max_parallel_jobs)
    batch.creation_cursor = stop
    batch.recipes_total = stop
    batch.is_creation_done = done
    batch.last_modified_at = datetime.now(UTC)
    await uow.batches.flush()
    return ChunkOutcome(stop - cursor, created, next_cursor)


async def get_visible(
    repos: Repositories, batch_id: int, actor: Actor | None, *, lock: bool = False
) -> Batch:
    batch = await repos.batches.get(batch_id, for_update=lock)
    if batch is not None:
        [workspace] = await repos.workspaces.get_many([batch.workspace_id])
        if workspace is not None and can_read(workspace, actor):
            return batch
    raise NotFoundError(f"No batch with id {batch_id}")


@dataclass(frozen=True, slots=True)
class BatchEdit:
    """Only these change after creation; the definition and the chain never do."""

    title: str | None = None
    description: str | None = None
    priority: int | None = None
    max_parallel_jobs: int | None = None


async def edit_batch(
    uow: UnitOfWork, *, batch_id: int, edit: BatchEdit, actor: Actor | None
) -> Batch:
    require_writer(actor)
    batch = await get_visible(uow, batch_id, actor, lock=True)
    merged = BatchSpec(
        workspace="-",
        title=batch.title if edit.title is None else edit.title,
        description=batch.description if edit.description is None else edit.description,
        priority=batch.priority if edit.priority is None else edit.priority,
        max_parallel_jobs=(
            batch.max_parallel_jobs if edit.max_parallel_jobs is None else edit.max_parallel_jobs
        ),
    )
    issues = _configuration_issues(merged)
    if issues:
        raise ValidationFailedError(
            "Invalid batch edit", [Violation(i.path or "$", i.description) for i in issues]
        )
    batch.title = merged.title.strip()
    batch.description = merged.description
    if merged.priority != batch.priority:
        await uow.jobs.set_priority_of_waiting(batch.id, merged.priority)
    batch.priority = merged.priority
    batch.max_parallel_jobs = merged.max_parallel_jobs
    batch.last_modified_at = datetime.now(UTC)
    await uow.batches.flush()
    return batch


async def cancel_batch(
    uow: UnitOfWork, *, batch_id: int, reason: str | None, actor: Actor | None
) -> tuple[Batch, int]:
    """Cancel every unfinished job (and stop creating more). Returns the batch and how
    many jobs were canceled."""
    who = require_writer(actor)
    raise_if_invalid("Invalid cancel", check_reason(reason))
    batch = await get_visible(uow, batch_id, actor, lock=True)
    if batch.canceled_at is not None:
        raise InvalidTransitionError(f"Batch {batch_id} is already canceled")
    batch.canceled_at = datetime.now(UTC)
    batch.last_modified_at = batch.canceled_at
    why = reason or f"batch canceled by {who.owner}"
    canceled = await jobs.cancel_in_batch(uow, batch_id=batch_id, reason=why)
    if not canceled and batch.is_creation_done:
        # Every job had finished: nothing was canceled, so the batch is not marked
        # canceled (the caller's transaction is rolled back with this error).
        raise InvalidTransitionError(f"Batch {batch_id} has finished: nothing to cancel")
    await uow.batches.flush()
    return batch, canceled


async def reprocess_batch(
    uow: UnitOfWork,
    *,
    root_batch_id: int,
    rerun: RerunMode,
    nodes: tuple[str, ...],
    title: str | None,
    description: str,
    recipe: JSON | None,
    priority: int,
    actor: Actor | None,
    dry_run: bool = False,
) -> Created:
    """createBatch with previousBatch, titled like the chain's latest batch by default."""
    require_writer(actor)
    try:
        root = await get_visible(uow, root_batch_id, actor)
    except NotFoundError as exc:  # the same answer createBatch gives
        raise InvalidBatchError(
            Validation(
                errors=[
                    Issue(
                        IssueName.PREV_BATCH_NOT_FOUND,
                        f"no chain has root batch {root_batch_id}",
                        "$.rootBatch",
                    )
                ]
            )
        ) from exc
    workspace = await uow.workspaces.get_many([root.workspace_id])
    latest = await uow.batches.latest_in_chain(root.id) or root
    spec = BatchSpec(
        workspace=workspace[0].name if workspace[0] else "",
        title=title if title is not None else latest.title,
        description=description,
        definition=None if recipe is None else {"recipe": recipe},
        previous=PreviousBatch(root_batch_id=root_batch_id, rerun=rerun, nodes=nodes),
        priority=priority,
        cache_policy=latest.cache_policy,
        max_parallel_jobs=latest.max_parallel_jobs,
    )
    return await create_batch(uow, spec=spec, actor=actor, dry_run=dry_run)


async def retry_batch(
    uow: UnitOfWork, *, batch_id: int, include_canceled: bool, actor: Actor | None
) -> tuple[Batch, int]:
    """Re-open the batch's FAILED jobs (and CANCELED ones, when asked) as new attempts,
    with what they had canceled downstream. Returns the batch and how many jobs were
    re-opened. Statements do not grow with the number of jobs."""
    who = require_writer(actor)
    batch = await get_visible(uow, batch_id, actor, lock=True)
    if batch.canceled_at is not None and include_canceled:
        batch.canceled_at = None  # running it again undoes the batch's cancellation
    statuses = (JobStatus.FAILED, JobStatus.CANCELED) if include_canceled else (JobStatus.FAILED,)
    retried = await jobs.retry_in_batch(uow, batch_id=batch_id, statuses=statuses, who=who.owner)
    batch.last_modified_at = datetime.now(UTC)
    await uow.batches.flush()
    return batch, retried
