"""The per-process token cache: at most ``ttl`` seconds of trust, unknown secrets never
cached, a change dropped at once where it is known."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import update

import graphql_api.auth.authenticator as module
from db.enums import TokenRole
from db.models import Token
from db.session import Database
from domain.errors import UnauthenticatedError
from graphql_api.auth.authenticator import Authenticator
from tests.factories import make_token


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    found = Clock()
    monkeypatch.setattr(module.time, "monotonic", found)
    return found


async def disable(db: Database, token_id: int) -> None:
    async with db.write_session() as session:
        await session.execute(update(Token).where(Token.id == token_id).values(enabled=False))
        await session.commit()


async def test_a_token_disabled_elsewhere_is_refused_once_the_cache_expires(
    db: Database, clock: Clock
) -> None:
    token, secret = await make_token(db, role=TokenRole.READER)
    auth = Authenticator(db, ttl=5.0)
    now = datetime.now(UTC)
    assert (await auth.authenticate(secret, now=now)).token_id == token.id
    await disable(db, token.id)
    clock.now += 4.9  # within the bound: still trusted, no lookup
    assert (await auth.authenticate(secret, now=now)).token_id == token.id
    clock.now += 0.2  # past it: looked up again, refused
    with pytest.raises(UnauthenticatedError):
        await auth.authenticate(secret, now=now)


async def test_forget_drops_a_token_at_once(db: Database, clock: Clock) -> None:
    token, secret = await make_token(db, role=TokenRole.READER)
    auth = Authenticator(db, ttl=5.0)
    await auth.authenticate(secret, now=datetime.now(UTC))
    await disable(db, token.id)
    auth.forget(token.id)
    with pytest.raises(UnauthenticatedError):
        await auth.authenticate(secret, now=datetime.now(UTC))


async def test_unknown_secrets_are_not_cached(db: Database, clock: Clock) -> None:
    auth = Authenticator(db, ttl=5.0)
    with pytest.raises(UnauthenticatedError):
        await auth.authenticate("bg_not-yet", now=datetime.now(UTC))
    assert auth._known == {}


async def test_an_expiry_is_honoured_from_the_cache(db: Database, clock: Clock) -> None:
    from datetime import timedelta

    _, secret = await make_token(
        db, role=TokenRole.READER, expires_at=datetime.now(UTC) + timedelta(hours=1)
    )
    auth = Authenticator(db, ttl=5.0)
    await auth.authenticate(secret, now=datetime.now(UTC))
    with pytest.raises(UnauthenticatedError):  # cached, but the cached expiry has passed
        await auth.authenticate(secret, now=datetime.now(UTC) + timedelta(hours=2))


# --- open connections' view (graphql_api.auth.revocation) ---------------------------


# No fake clock below: time.monotonic is the event loop's clock too.


async def test_connections_see_a_change_at_once_when_it_is_announced(db: Database) -> None:
    from graphql_api.auth.revocation import TokenStatus

    token, _ = await make_token(db, role=TokenRole.READER)
    status = TokenStatus(db, ttl=5.0)
    assert await status.usable(token.id, now=datetime.now(UTC))
    await disable(db, token.id)
    assert await status.usable(token.id, now=datetime.now(UTC))  # cached, unannounced
    status.forget(token.id)  # what the token table's NOTIFY does
    assert not await status.usable(token.id, now=datetime.now(UTC))


async def test_connections_see_an_unannounced_change_within_the_bound(db: Database) -> None:
    import asyncio

    from graphql_api.auth.revocation import TokenStatus

    token, _ = await make_token(db, role=TokenRole.READER)
    status = TokenStatus(db, ttl=0.2)
    assert await status.usable(token.id, now=datetime.now(UTC))
    await disable(db, token.id)
    await asyncio.sleep(0.2)
    assert not await status.usable(token.id, now=datetime.now(UTC))


async def test_the_watcher_closes_only_connections_whose_token_stopped_holding(
    db: Database,
) -> None:
    import asyncio
    from datetime import timedelta

    from domain.auth.rules import Actor
    from graphql_api.auth.revocation import TokenStatus

    kept, _ = await make_token(db, role=TokenRole.READER)
    revoked, _ = await make_token(db, role=TokenRole.READER)
    expiring, _ = await make_token(
        db, role=TokenRole.READER, expires_at=datetime.now(UTC) + timedelta(milliseconds=200)
    )
    status = TokenStatus(db, ttl=5.0)
    closed: list[int] = []

    def closer(token_id: int) -> Any:
        async def close() -> None:
            closed.append(token_id)

        return close

    def actor(token_id: int) -> Actor:
        return Actor(token_id=token_id, owner="x", role=TokenRole.READER)

    with (
        status.watch(actor(kept.id), closer(kept.id)),
        status.watch(actor(revoked.id), closer(revoked.id)),
        status.watch(actor(expiring.id), closer(expiring.id)),
    ):
        assert await status.check() == 0
        await disable(db, revoked.id)
        status.forget(revoked.id)
        assert await status.check() == 1
        await asyncio.sleep(0.25)  # past the expiry (the clock, not the cache, decides)
        assert await status.check() == 1
        await asyncio.sleep(0)  # the closes run as tasks
        assert closed == [revoked.id, expiring.id]
        assert await status.check() == 0  # each closed once
