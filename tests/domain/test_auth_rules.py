"""Pure authorisation rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from db.enums import TokenRole
from domain.auth import rules
from domain.errors import ForbiddenError, UnauthenticatedError

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def actor(role: TokenRole) -> rules.Actor:
    return rules.Actor(token_id=1, owner="o", role=role)


def test_secrets_are_random_and_hash_deterministically() -> None:
    a, b = rules.new_secret(), rules.new_secret()
    assert a != b
    assert a.startswith(rules.SECRET_PREFIX)
    assert len(a) > 40
    assert rules.hash_secret(a) == rules.hash_secret(a) != rules.hash_secret(b)
    assert len(rules.hash_secret(a)) == 64


@pytest.mark.parametrize(
    ("enabled", "expires_at", "usable"),
    [
        (True, None, True),
        (False, None, False),
        (True, NOW + timedelta(seconds=1), True),
        (True, NOW, False),
        (True, NOW - timedelta(days=1), False),
    ],
)
def test_usable(enabled: bool, expires_at: datetime | None, usable: bool) -> None:
    assert rules.is_usable(enabled=enabled, expires_at=expires_at, now=NOW) is usable


@pytest.mark.parametrize(
    ("role", "admin", "writer"),
    [
        (TokenRole.ADMIN, True, True),
        (TokenRole.WRITER, False, True),
        (TokenRole.READER, False, False),
        (TokenRole.WORKER, False, False),
    ],
)
def test_role_checks(role: TokenRole, admin: bool, writer: bool) -> None:
    for check, allowed in ((rules.require_admin, admin), (rules.require_writer, writer)):
        if allowed:
            assert check(actor(role)) == actor(role)
        else:
            with pytest.raises(ForbiddenError):
                check(actor(role))


def test_anonymous_is_unauthenticated_not_forbidden() -> None:
    with pytest.raises(UnauthenticatedError):
        rules.require_writer(None)
    assert rules.sees_private_workspaces(None) is False
    assert rules.sees_private_workspaces(actor(TokenRole.READER)) is True
