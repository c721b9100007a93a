from __future__ import annotations

import strawberry

from domain.auth.rules import require_admin
from graphql_api.auth.types import Token, Viewer
from graphql_api.context import Info
from graphql_api.relay import Connection, connection, page_args


@strawberry.type
class AuthQueries:
    @strawberry.field(description="The caller, as identified by its token (if any).")
    def viewer(self, info: Info) -> Viewer:
        actor = info.context.actor
        if actor is None:
            return Viewer(authenticated=False, owner=None, role=None)
        return Viewer(authenticated=True, owner=actor.owner, role=actor.role)

    @strawberry.field(description="All tokens, oldest first (admin).")
    async def tokens(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[Token]:
        require_admin(info.context.actor)
        limits = info.context.settings.limits
        args = page_args(
            first, after, default=limits.default_page_size, maximum=limits.max_page_size
        )
        async with info.context.reads() as reads:
            page = await reads.tokens.page(after=args.after, first=args.first)

        async def total() -> int:
            async with info.context.reads() as reads:
                return await reads.tokens.count()

        return connection(page, Token.from_model, total, after=args.after)
