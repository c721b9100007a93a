"""Task type use cases. Schemas never change in place: a change is a new revision."""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass

from db.enums import CachePolicy, TokenRole
from db.errors import DuplicateKeyError
from db.models import TaskType, TaskTypeRevision
from db.repositories.task_type import TaskTypeRepository
from db.repositories.workspace import WorkspaceRepository
from db.uow import UnitOfWork
from domain.auth.rules import Actor, require_role, require_writer
from domain.errors import ConflictError, NotFoundError, Violation, raise_if_invalid
from domain.tasktypes import rules
from domain.tasktypes.rules import JSON, RevisionFields
from domain.workspaces.service import can_read, get_readable


@dataclass(frozen=True, slots=True)
class TaskTypeSpec:
    workspace: str
    name: str
    fields: RevisionFields
    check_in_timeout_seconds: int = 30


class _Keep:
    """Marks a field a new revision takes unchanged from the current one."""

    def __repr__(self) -> str:
        return "KEEP"


KEEP = _Keep()


@dataclass(frozen=True, slots=True)
class RevisionChanges:
    description: str | _Keep = KEEP
    parameters_schema: JSON = KEEP
    result_schema: JSON = KEEP
    implementation: str | _Keep = KEEP
    timeout_seconds: int | _Keep | None = KEEP
    max_attempts: int | _Keep = KEEP
    cache_policy: CachePolicy | _Keep = KEEP
    requirements: JSON = KEEP

    def apply_to(self, base: RevisionFields) -> RevisionFields:
        changed = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if getattr(self, f.name) is not KEEP
        }
        return dataclasses.replace(base, **changed)


@dataclass(frozen=True, slots=True)
class ParameterCheck:
    revision: TaskTypeRevision
    violations: list[Violation]


def fields_of(revision: TaskTypeRevision) -> RevisionFields:
    return RevisionFields(
        description=revision.description,
        parameters_schema=revision.parameters_schema,
        result_schema=revision.result_schema,
        implementation=revision.implementation,
        timeout_seconds=revision.timeout_seconds,
        max_attempts=revision.max_attempts,
        cache_policy=revision.cache_policy,
        requirements=revision.requirements,
    )


async def create_task_type(uow: UnitOfWork, *, spec: TaskTypeSpec, actor: Actor | None) -> TaskType:
    who = require_writer(actor)
    workspace = await get_readable(uow.workspaces, name=spec.workspace, actor=actor)
    raise_if_invalid(
        "Invalid task type",
        rules.check_name(spec.name)
        + rules.check_check_in_timeout(spec.check_in_timeout_seconds)
        + rules.check_revision_fields(spec.fields),
    )
    conflict = ConflictError(f"A task type named {spec.name!r} exists in {spec.workspace!r}")
    if await uow.task_types.get_by_name(workspace.id, spec.name) is not None:
        raise conflict
    task_type = TaskType(
        workspace_id=workspace.id,
        name=spec.name,
        available=False,
        check_in_timeout_seconds=spec.check_in_timeout_seconds,
        latest_revision=1,
    )
    try:
        await uow.task_types.insert(task_type)
    except DuplicateKeyError as exc:
        raise conflict from exc
    uow.task_types.add_revision(_revision(task_type.id, 1, spec.fields, who))
    await uow.task_types.flush()
    return task_type


async def create_revision(
    uow: UnitOfWork, *, task_type_id: int, changes: RevisionChanges, actor: Actor | None
) -> TaskTypeRevision:
    """A new revision from the current one with ``changes``; jobs keep the one they pinned."""
    who = require_writer(actor)
    task_type = await _get_visible(
        uow.task_types, uow.workspaces, task_type_id, actor, for_update=True
    )
    current = await uow.task_types.get_revision(task_type.id, task_type.latest_revision)
    if current is None:  # pragma: no cover - a task type always has its first revision
        raise NotFoundError(f"Task type {task_type_id} has no revision")
    base = fields_of(current)
    fields = changes.apply_to(base)
    violations = rules.check_revision_fields(fields)
    if not violations and fields == base:
        violations.append(Violation("$", "a new revision must change at least one field"))
    raise_if_invalid("Invalid revision", violations)
    number = await uow.task_types.next_revision_number(task_type.id)
    revision = _revision(task_type.id, number, fields, who)
    uow.task_types.add_revision(revision)
    await uow.task_types.flush()
    return revision


async def set_availability(
    uow: UnitOfWork, *, task_type_id: int, available: bool, actor: Actor | None
) -> TaskType:
    require_writer(actor)
    task_type = await _get_visible(
        uow.task_types, uow.workspaces, task_type_id, actor, for_update=True
    )
    task_type.available = available
    await uow.task_types.flush()
    return task_type


async def check_in(uow: UnitOfWork, *, task_type_id: int, actor: Actor | None) -> TaskType:
    """The implementation is alive: reset the clock (even if nothing else changes)."""
    require_role(actor, TokenRole.WRITER, TokenRole.WORKER)
    await _get_visible(uow.task_types, uow.workspaces, task_type_id, actor)
    task_type = await uow.task_types.mark_checked_in(task_type_id)
    if task_type is None:  # deleted between the two statements
        raise NotFoundError(f"No task type with id {task_type_id}")
    return task_type


async def check_parameters(
    task_types: TaskTypeRepository,
    workspaces: WorkspaceRepository,
    *,
    task_type_id: int,
    revision: int | None,
    parameters: JSON,
    actor: Actor | None,
) -> ParameterCheck:
    """Validate parameters against a revision's schema (the current one by default). Reads only."""
    task_type = await _get_visible(task_types, workspaces, task_type_id, actor)
    number = task_type.latest_revision if revision is None else revision
    found = await task_types.get_revision(task_type.id, number)
    if found is None:
        raise NotFoundError(f"Task type {task_type.name!r} has no revision {number}")
    # In a thread: a large document against a schema's patterns is CPU work that must
    # not stall the event loop (RE2 releases the GIL while it matches).
    violations = await asyncio.to_thread(
        rules.validate_parameters, found.parameters_schema, parameters
    )
    return ParameterCheck(revision=found, violations=violations)


async def _get_visible(
    task_types: TaskTypeRepository,
    workspaces: WorkspaceRepository,
    task_type_id: int,
    actor: Actor | None,
    *,
    for_update: bool = False,
) -> TaskType:
    task_type = await task_types.get(task_type_id, for_update=for_update)
    if task_type is not None:
        [workspace] = await workspaces.get_many([task_type.workspace_id])
        if workspace is not None and can_read(workspace, actor):
            return task_type
    raise NotFoundError(f"No task type with id {task_type_id}")


def _revision(
    task_type_id: int, number: int, fields: RevisionFields, who: Actor
) -> TaskTypeRevision:
    return TaskTypeRevision(
        task_type_id=task_type_id,
        revision=number,
        description=fields.description,
        parameters_schema=fields.parameters_schema,
        result_schema=fields.result_schema,
        implementation=fields.implementation,
        timeout_seconds=fields.timeout_seconds,
        max_attempts=fields.max_attempts,
        cache_policy=fields.cache_policy,
        requirements=fields.requirements,
        created_by=who.owner,
    )
