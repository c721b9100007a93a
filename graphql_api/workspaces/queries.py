from __future__ import annotations

import strawberry

from domain.auth.rules import sees_private_workspaces
from domain.errors import NotFoundError
from domain.workspaces.service import get_readable
from graphql_api.context import Info
from graphql_api.relay import Connection, paginate
from graphql_api.workspaces.types import Workspace


@strawberry.type
class WorkspaceQueries:
    @strawberry.field(description="Workspaces you may read, by name.")
    async def workspaces(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[Workspace]:
        public_only = not sees_private_workspaces(info.context.actor)
        return await paginate(
            info,
            first=first,
            after=after,
            page=lambda reads, args: reads.workspaces.page(
                public_only=public_only, after=args.after, first=args.first
            ),
            count=lambda reads: reads.workspaces.count(public_only=public_only),
            convert=Workspace.from_model,
        )

    @strawberry.field(description="A workspace by name; null if missing or not readable.")
    async def workspace(self, info: Info, name: str) -> Workspace | None:
        async with info.context.reads() as reads:
            try:
                row = await get_readable(reads.workspaces, name=name, actor=info.context.actor)
            except NotFoundError:
                return None
        return Workspace.from_model(row)
