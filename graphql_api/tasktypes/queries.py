from __future__ import annotations

from typing import Annotated

import strawberry
from strawberry.scalars import JSON

from db.repositories.task_type import TaskTypeFilter as RepoFilter
from domain.auth.rules import sees_private_workspaces
from domain.errors import DomainError, NotFoundError
from domain.tasktypes import service
from domain.workspaces.service import get_readable
from graphql_api.context import Info
from graphql_api.errors import NotFound, Violation, error_arm
from graphql_api.ids import parse_id
from graphql_api.relay import Connection, paginate
from graphql_api.tasktypes.types import TaskType, TaskTypeFilter, TaskTypeRevision


@strawberry.type(description="The outcome of validating parameters: data, not an error.")
class ParameterValidation:
    is_valid: bool
    revision: TaskTypeRevision
    violations: list[Violation]


ValidateParametersResult = Annotated[
    ParameterValidation | NotFound, strawberry.union("ValidateParametersResult")
]


async def task_type_connection(
    info: Info,
    *,
    workspace_id: int | None = None,
    workspace_name: str | None = None,
    flt: TaskTypeFilter | None,
    first: int | None,
    after: str | None,
) -> Connection[TaskType]:
    repo_filter = RepoFilter(
        workspace_id=workspace_id,
        workspace_name=workspace_name,
        public_only=not sees_private_workspaces(info.context.actor),
        available=flt.available if flt else None,
        name_contains=flt.name_contains if flt else None,
    )
    return await paginate(
        info,
        first=first,
        after=after,
        page=lambda reads, args: reads.task_types.page(
            repo_filter, after=args.after, first=args.first
        ),
        count=lambda reads: reads.task_types.count(repo_filter),
        convert=TaskType.from_model,
    )


@strawberry.type
class TaskTypeQueries:
    @strawberry.field(description="Task types you may read, by name; optionally of one workspace.")
    async def task_types(
        self,
        info: Info,
        workspace: str | None = None,
        filter: TaskTypeFilter | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[TaskType]:
        return await task_type_connection(
            info, workspace_name=workspace, flt=filter, first=first, after=after
        )

    @strawberry.field(description="A task type by workspace and name; null if not readable.")
    async def task_type(self, info: Info, name: str, workspace: str = "default") -> TaskType | None:
        async with info.context.reads() as reads:
            try:
                found = await get_readable(
                    reads.workspaces, name=workspace, actor=info.context.actor
                )
            except NotFoundError:
                return None
            row = await reads.task_types.get_by_name(found.id, name)
        return TaskType.from_model(row) if row is not None else None

    @strawberry.field(
        description="Check parameters against a revision's schema (the newest by default)."
        " Answered by its resolver, not compiled to SQL: JSON Schema validation is Python."
    )
    async def validate_parameters(
        self,
        info: Info,
        task_type: strawberry.ID,
        parameters: JSON,
        revision: int | None = None,
    ) -> ValidateParametersResult:
        async with info.context.reads() as reads:
            try:
                check = await service.check_parameters(
                    reads.task_types,
                    reads.workspaces,
                    task_type_id=parse_id(task_type, "TaskType"),
                    revision=revision,
                    parameters=parameters,
                    actor=info.context.actor,
                )
            except DomainError as exc:
                return error_arm(exc, (NotFound,))  # type: ignore[return-value]
        return ParameterValidation(
            is_valid=not check.violations,
            revision=TaskTypeRevision.from_model(check.revision),
            violations=[Violation(path=v.path, message=v.message) for v in check.violations],
        )
