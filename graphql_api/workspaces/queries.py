from __future__ import annotations

import strawberry

from domain.auth.rules import sees_private_workspaces
from domain.errors import NotFoundError
from domain.workspaces.service import get_readable
from graphql_api.context import Info
from graphql_api.relay import Connection, connection, page_args
from graphql_api.workspaces.types import Workspace


@strawberry.type
class WorkspaceQueries:
    @strawberry.field(description="Workspaces you may read, by name.")
    async def workspaces(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[Workspace]:
        limits = info.context.settings.limits
        args = page_args(
            first, after, default=limits.default_page_size, maximum=limits.max_page_size
        )
        public_only = not sees_private_workspaces(info.context.actor)
        async with info.context.reads() as reads:
            page = await reads.workspaces.page(
                public_only=public_only, after=args.after, first=args.first
            )

        async def total() -> int:
            async with info.context.reads() as reads:
                return await reads.workspaces.count(public_only=public_only)

        return connection(page, Workspace.from_model, total, after=args.after)

    @strawberry.field(description="A workspace by name; null if missing or not readable.")
    async def workspace(self, info: Info, name: str) -> Workspace | None:
        async with info.context.reads() as reads:
            try:
                row = await get_readable(reads.workspaces, name=name, actor=info.context.actor)
            except NotFoundError:
                return None
        return Workspace.from_model(row)
