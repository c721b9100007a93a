from __future__ import annotations

from typing import Annotated, cast

import strawberry
from strawberry.scalars import JSON

from db.enums import CachePolicy
from domain.tasktypes import service
from domain.tasktypes.rules import DEFAULT_SCHEMA, RevisionFields
from graphql_api.context import Info
from graphql_api.errors import Conflict, NotFound, ValidationFailed
from graphql_api.ids import parse_id
from graphql_api.mutations import mutate
from graphql_api.tasktypes.types import TaskType, TaskTypeRevision


@strawberry.input
class CreateTaskTypeInput:
    name: str
    workspace: str = "default"
    description: str = ""
    # No JSON default values here: graphql-core cannot render an object default in
    # introspection. Omitted (or null) means DEFAULT_SCHEMA: any object.
    parameters_schema: JSON | None = strawberry.field(
        default=None, description='A JSON Schema for job parameters (default {"type": "object"}).'
    )
    result_schema: JSON | None = strawberry.field(
        default=None, description='A JSON Schema for job results (default {"type": "object"}).'
    )
    implementation: str = "external"
    timeout_seconds: int | None = None
    max_attempts: int = 3
    cache_policy: CachePolicy = CachePolicy.NONE
    check_in_timeout_seconds: int = 30
    requirements: JSON | None = strawberry.field(
        default=None,
        description="What a worker must offer to run these jobs: every key/value must appear"
        ' in the worker\'s metadata (static over dynamic), e.g. {arch: "aarch64"}. Default {}.',
    )


@strawberry.input(description="Fields left out are taken unchanged from the newest revision.")
class CreateTaskTypeRevisionInput:
    task_type: strawberry.ID
    description: str | None = strawberry.UNSET
    parameters_schema: JSON | None = strawberry.UNSET
    result_schema: JSON | None = strawberry.UNSET
    implementation: str | None = strawberry.UNSET
    timeout_seconds: int | None = strawberry.UNSET
    max_attempts: int | None = strawberry.UNSET
    cache_policy: CachePolicy | None = strawberry.UNSET
    requirements: JSON | None = strawberry.UNSET

    def to_changes(self) -> service.RevisionChanges:
        """UNSET keeps a field; null is a value only where it means something (timeout)."""
        given = {
            name: getattr(self, name)
            for name in (
                "description",
                "parameters_schema",
                "result_schema",
                "implementation",
                "timeout_seconds",
                "max_attempts",
                "cache_policy",
                "requirements",
            )
            if getattr(self, name) is not strawberry.UNSET
        }
        return service.RevisionChanges(**given)


@strawberry.type
class TaskTypeCreated:
    task_type: TaskType


@strawberry.type
class TaskTypeRevisionCreated:
    revision: TaskTypeRevision


@strawberry.type
class TaskTypeUpdated:
    task_type: TaskType


CreateTaskTypePayload = Annotated[
    TaskTypeCreated | ValidationFailed | Conflict | NotFound,
    strawberry.union("CreateTaskTypePayload"),
]
CreateTaskTypeRevisionPayload = Annotated[
    TaskTypeRevisionCreated | ValidationFailed | NotFound,
    strawberry.union("CreateTaskTypeRevisionPayload"),
]
TaskTypeUpdatePayload = Annotated[
    TaskTypeUpdated | NotFound, strawberry.union("TaskTypeUpdatePayload")
]


def _or_default(schema: JSON | None) -> JSON:
    return cast(JSON, dict(DEFAULT_SCHEMA)) if schema is None else schema


@strawberry.type
class TaskTypeMutations:
    @strawberry.mutation(description="Create a task type with its first revision (writer).")
    async def create_task_type(
        self, info: Info, input: CreateTaskTypeInput
    ) -> CreateTaskTypePayload:
        spec = service.TaskTypeSpec(
            workspace=input.workspace,
            name=input.name,
            check_in_timeout_seconds=input.check_in_timeout_seconds,
            fields=RevisionFields(
                description=input.description,
                parameters_schema=_or_default(input.parameters_schema),
                result_schema=_or_default(input.result_schema),
                implementation=input.implementation,
                timeout_seconds=input.timeout_seconds,
                max_attempts=input.max_attempts,
                cache_policy=input.cache_policy,
                requirements={} if input.requirements is None else input.requirements,
            ),
        )
        return await mutate(
            info,
            CreateTaskTypePayload,
            lambda uow: service.create_task_type(uow, spec=spec, actor=info.context.actor),
            lambda row: TaskTypeCreated(task_type=TaskType.from_model(row)),
        )

    @strawberry.mutation(description="A new revision; schemas never change in place (writer).")
    async def create_task_type_revision(
        self, info: Info, input: CreateTaskTypeRevisionInput
    ) -> CreateTaskTypeRevisionPayload:
        return await mutate(
            info,
            CreateTaskTypeRevisionPayload,
            lambda uow: service.create_revision(
                uow,
                task_type_id=parse_id(input.task_type, "TaskType"),
                changes=input.to_changes(),
                actor=info.context.actor,
            ),
            lambda row: TaskTypeRevisionCreated(revision=TaskTypeRevision.from_model(row)),
        )

    @strawberry.mutation(description="Mark a task type available or not (writer).")
    async def set_task_type_availability(
        self, info: Info, task_type: strawberry.ID, available: bool
    ) -> TaskTypeUpdatePayload:
        return await mutate(
            info,
            TaskTypeUpdatePayload,
            lambda uow: service.set_availability(
                uow,
                task_type_id=parse_id(task_type, "TaskType"),
                available=available,
                actor=info.context.actor,
            ),
            lambda row: TaskTypeUpdated(task_type=TaskType.from_model(row)),
        )

    @strawberry.mutation(
        description="The implementation is alive: reset the check-in clock and mark available"
        " (writer or worker)."
    )
    async def check_in_task_type(
        self, info: Info, task_type: strawberry.ID
    ) -> TaskTypeUpdatePayload:
        return await mutate(
            info,
            TaskTypeUpdatePayload,
            lambda uow: service.check_in(
                uow, task_type_id=parse_id(task_type, "TaskType"), actor=info.context.actor
            ),
            lambda row: TaskTypeUpdated(task_type=TaskType.from_model(row)),
        )
