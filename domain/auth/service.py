"""Token use cases: authenticate a presented secret, create and (dis)able tokens."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from db.enums import TokenRole
from db.models import Token
from db.repositories.token import TokenRepository
from db.uow import UnitOfWork
from domain.auth.rules import (
    DISPLAY_PREFIX_LENGTH,
    Actor,
    hash_secret,
    is_usable,
    new_secret,
    require_admin,
)
from domain.errors import NotFoundError, UnauthenticatedError, Violation, raise_if_invalid
from domain.text import check_text

LAST_USED_RESOLUTION = timedelta(minutes=1)
MAX_OWNER_LENGTH = 200


@dataclass(frozen=True, slots=True)
class CreatedToken:
    token: Token
    secret: str  # shown once; only its hash is stored


async def authenticate(tokens: TokenRepository, *, secret: str, now: datetime) -> Actor:
    """Resolve a presented secret to an actor, or refuse it.

    Unknown, disabled and expired tokens get the same answer so that a caller
    cannot probe which secrets exist.
    """
    token = await tokens.get_by_hash(hash_secret(secret))
    if token is None or not is_usable(enabled=token.enabled, expires_at=token.expires_at, now=now):
        raise UnauthenticatedError("Invalid, disabled or expired token")
    return Actor(token_id=token.id, owner=token.owner, role=token.role)


async def record_use(uow: UnitOfWork, *, actor: Actor, now: datetime) -> None:
    await uow.tokens.touch_last_used(actor.token_id, now=now, every=LAST_USED_RESOLUTION)


def _check_owner(owner: str) -> list[Violation]:
    return check_text(owner, "$.owner", max_length=MAX_OWNER_LENGTH, required=True)


async def create_token(
    uow: UnitOfWork,
    *,
    owner: str,
    role: TokenRole,
    expires_at: datetime | None,
    now: datetime,
    actor: Actor | None,
    enabled: bool = True,
) -> CreatedToken:
    require_admin(actor)
    violations = _check_owner(owner)
    if expires_at is not None and expires_at <= now:
        violations.append(Violation("$.expiresAt", "must be in the future"))
    raise_if_invalid("Invalid token", violations)
    return await _insert_token(
        uow, owner=owner.strip(), role=role, expires_at=expires_at, enabled=enabled
    )


async def _insert_token(
    uow: UnitOfWork, *, owner: str, role: TokenRole, expires_at: datetime | None, enabled: bool
) -> CreatedToken:
    secret = new_secret()
    token = Token(
        owner=owner,
        role=role,
        secret_hash=hash_secret(secret),
        prefix=secret[:DISPLAY_PREFIX_LENGTH],
        enabled=enabled,
        expires_at=expires_at,
    )
    uow.tokens.add(token)
    await uow.tokens.flush()
    return CreatedToken(token=token, secret=secret)


async def set_token_enabled(
    uow: UnitOfWork, *, token_id: int, enabled: bool, actor: Actor | None
) -> Token:
    require_admin(actor)
    token = await uow.tokens.get(token_id, for_update=True)
    if token is None:
        raise NotFoundError(f"No token with id {token_id}")
    token.enabled = enabled
    await uow.tokens.flush()
    return token


async def bootstrap_admin(uow: UnitOfWork, *, owner: str = "bootstrap-admin") -> str | None:
    """On first start there is no admin: create one and return its secret (else None).

    Runs under a transaction-scoped advisory lock so that two processes starting
    together create one admin, not two.
    """
    await uow.tokens.lock_bootstrap()
    if await uow.tokens.any_enabled_admin():
        return None
    created = await _insert_token(
        uow, owner=owner, role=TokenRole.ADMIN, expires_at=None, enabled=True
    )
    return created.secret


async def create_worker_token(uow: UnitOfWork, *, owner: str) -> CreatedToken:
    """A WORKER token for a self-registering worker: disabled until an admin enables it."""
    return await _insert_token(
        uow, owner=owner, role=TokenRole.WORKER, expires_at=None, enabled=False
    )
