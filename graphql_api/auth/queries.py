from __future__ import annotations

import strawberry

from domain.auth.rules import require_admin
from graphql_api.auth.types import Token, Viewer
from graphql_api.context import Info
from graphql_api.relay import Connection, paginate


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
        return await paginate(
            info,
            first=first,
            after=after,
            page=lambda reads, args: reads.tokens.page(after=args.after, first=args.first),
            count=lambda reads: reads.tokens.count(),
            convert=Token.from_model,
        )
