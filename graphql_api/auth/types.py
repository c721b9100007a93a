from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import strawberry
from strawberry import relay

from db import models
from db.enums import TokenRole
from domain.auth.rules import require_admin
from graphql_api.context import Info
from graphql_api.ids import node_ints


@strawberry.type(description="An API token. Its secret is shown only once, when created.")
class Token(relay.Node):
    id: relay.NodeID[int]
    owner: str
    role: TokenRole
    prefix: str = strawberry.field(description="The first characters of the secret.")
    enabled: bool
    expires_at: datetime | None
    last_used_at: datetime | None = strawberry.field(
        description="When the token was last used (to the minute)."
    )
    created_at: datetime

    @classmethod
    def from_model(cls, row: models.Token) -> Token:
        return cls(
            id=row.id,
            owner=row.owner,
            role=row.role,
            prefix=row.prefix,
            enabled=row.enabled,
            expires_at=row.expires_at,
            last_used_at=row.last_used_at,
            created_at=row.created_at,
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Token | None]:
        require_admin(info.context.actor)
        ids = node_ints(list(node_ids))
        async with info.context.reads() as reads:
            rows = await reads.tokens.get_many(ids)
        return [cls.from_model(row) if row is not None else None for row in rows]


@strawberry.type(description="Who is calling.")
class Viewer:
    authenticated: bool
    owner: str | None
    role: TokenRole | None
