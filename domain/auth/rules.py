"""Who may do what. Pure: no I/O.

Roles are global. ``ADMIN`` ⊇ ``WRITER`` ⊇ ``READER``; ``WORKER`` is a separate
role for worker processes: it reads like a reader and speaks the worker
protocol, but cannot change definitions.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from db.enums import TokenRole
from domain.errors import ForbiddenError, UnauthenticatedError

SECRET_PREFIX = "bg_"
# Shown in listings so people can tell their tokens apart without the secret.
DISPLAY_PREFIX_LENGTH = 10


@dataclass(frozen=True, slots=True)
class Actor:
    token_id: int
    owner: str
    role: TokenRole


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def is_usable(*, enabled: bool, expires_at: datetime | None, now: datetime) -> bool:
    """A disabled or expired token is treated exactly like an unknown one."""
    return enabled and (expires_at is None or expires_at > now)


def require_authenticated(actor: Actor | None) -> Actor:
    if actor is None:
        raise UnauthenticatedError("This operation needs a token (Authorization: Bearer …)")
    return actor


def require_role(actor: Actor | None, *roles: TokenRole) -> Actor:
    """Admins may do everything; otherwise the actor's role must be one of ``roles``."""
    found = require_authenticated(actor)
    if found.role is TokenRole.ADMIN or found.role in roles:
        return found
    wanted = " or ".join(sorted({TokenRole.ADMIN, *roles}))
    article = "an" if str(wanted)[:1] in "AEIOU" else "a"
    raise ForbiddenError(f"This operation needs {article} {wanted} token; yours is {found.role}")


def require_admin(actor: Actor | None) -> Actor:
    return require_role(actor, TokenRole.ADMIN)


def require_writer(actor: Actor | None) -> Actor:
    return require_role(actor, TokenRole.WRITER)


def sees_private_workspaces(actor: Actor | None) -> bool:
    """Anonymous callers read public workspaces only; every valid token reads all."""
    return actor is not None


# Who background work acts as. Messages on the broker are trusted: only the
# deployment's own processes can reach it.
SYSTEM_ACTOR = Actor(token_id=0, owner="system", role=TokenRole.WORKER)
