from __future__ import annotations

from typing import Annotated

import strawberry

from domain.workspaces import service
from graphql_api.context import Info
from graphql_api.errors import Conflict, ValidationFailed
from graphql_api.mutations import mutate
from graphql_api.workspaces.types import Workspace


@strawberry.input
class CreateWorkspaceInput:
    name: str = strawberry.field(description="Lower-case letters, digits, '-' and '_'.")
    public: bool = False


@strawberry.type
class WorkspaceCreated:
    workspace: Workspace


CreateWorkspacePayload = Annotated[
    WorkspaceCreated | ValidationFailed | Conflict, strawberry.union("CreateWorkspacePayload")
]


@strawberry.type
class WorkspaceMutations:
    @strawberry.mutation(description="Create a workspace (admin).")
    async def create_workspace(
        self, info: Info, input: CreateWorkspaceInput
    ) -> CreateWorkspacePayload:
        return await mutate(
            info,
            CreateWorkspacePayload,
            lambda uow: service.create_workspace(
                uow, name=input.name, public=input.public, actor=info.context.actor
            ),
            lambda row: WorkspaceCreated(workspace=Workspace.from_model(row)),
        )
