from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import strawberry

from db.enums import TokenRole
from domain.auth import service
from graphql_api.auth.types import Token
from graphql_api.context import Info
from graphql_api.errors import NotFound, ValidationFailed
from graphql_api.ids import parse_id
from graphql_api.mutations import mutate


@strawberry.input
class CreateTokenInput:
    owner: str = strawberry.field(description="Who or what uses the token.")
    role: TokenRole
    expires_at: datetime | None = None
    enabled: bool = True


@strawberry.type
class TokenCreated:
    token: Token
    secret: str = strawberry.field(
        description="The secret, shown this once. Send it as `Authorization: Bearer <secret>`."
    )


@strawberry.type
class TokenUpdated:
    token: Token


CreateTokenPayload = Annotated[
    TokenCreated | ValidationFailed, strawberry.union("CreateTokenPayload")
]
SetTokenEnabledPayload = Annotated[
    TokenUpdated | NotFound, strawberry.union("SetTokenEnabledPayload")
]


@strawberry.type
class AuthMutations:
    @strawberry.mutation(description="Create a token (admin). The secret is returned once.")
    async def create_token(self, info: Info, input: CreateTokenInput) -> CreateTokenPayload:
        return await mutate(
            info,
            CreateTokenPayload,
            lambda uow: service.create_token(
                uow,
                owner=input.owner,
                role=input.role,
                expires_at=input.expires_at,
                enabled=input.enabled,
                now=datetime.now(UTC),
                actor=info.context.actor,
            ),
            lambda created: TokenCreated(
                token=Token.from_model(created.token), secret=created.secret
            ),
        )

    @strawberry.mutation(description="Enable or disable a token (admin).")
    async def set_token_enabled(
        self, info: Info, id: strawberry.ID, enabled: bool
    ) -> SetTokenEnabledPayload:
        token_id = parse_id(id, "Token")
        payload = await mutate(
            info,
            SetTokenEnabledPayload,
            lambda uow: service.set_token_enabled(
                uow, token_id=token_id, enabled=enabled, actor=info.context.actor
            ),
            lambda row: TokenUpdated(token=Token.from_model(row)),
        )
        if info.context.authenticator is not None:  # this process drops it at once
            info.context.authenticator.forget(token_id)
        return payload
