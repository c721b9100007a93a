"""Turns a presented secret into an actor, once per request, from a short per-process cache.

Every request with a token used to cost a database round trip before any work. The
token row is now kept per process for at most ``ttl`` seconds (5 by default): a
token disabled or expiring elsewhere is refused within that bound, and at once in
the process that changed it (``forget``) or that hears the change announced on the
event bus (a NOTIFY from the token table, see ``alembic/versions/0006``). Unknown
secrets are never cached, so a token created a moment ago works at once.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from db.enums import TokenRole
from db.repositories.token import TokenRepository
from db.session import Database
from db.uow import UnitOfWork
from domain.auth import service
from domain.auth.rules import Actor, hash_secret, is_usable
from domain.errors import UnauthenticatedError

DEFAULT_TTL_SECONDS = 5.0
MAX_CACHED = 10_000


@dataclass(frozen=True, slots=True)
class _Known:
    token_id: int
    owner: str
    role: TokenRole
    enabled: bool
    expires_at: datetime | None
    fetched: float  # time.monotonic()


class Authenticator:
    def __init__(
        self,
        db: Database,
        *,
        ttl: float = DEFAULT_TTL_SECONDS,
        on_forget: Callable[[int | None], None] | None = None,
    ) -> None:
        self._db = db
        self._ttl = ttl
        # Told of every forget (the open connections' view: graphql_api.auth.revocation).
        self._on_forget = on_forget
        # sha256 of the secret → the token row as last read (most recent last).
        self._known: OrderedDict[str, _Known] = OrderedDict()
        self._keys: dict[int, str] = {}  # token id → its key in _known
        # When this process last recorded each token's use: recording is a
        # write, so it happens at most once per resolution interval per token.
        self._recorded: dict[int, datetime] = {}

    async def authenticate(self, secret: str, *, now: datetime) -> Actor:
        key = hash_secret(secret)
        known = self._known.get(key)
        if known is None or time.monotonic() - known.fetched > self._ttl:
            known = await self._fetch(key)
        if not is_usable(enabled=known.enabled, expires_at=known.expires_at, now=now):
            raise UnauthenticatedError("Invalid, disabled or expired token")
        actor = Actor(token_id=known.token_id, owner=known.owner, role=known.role)
        last = self._recorded.get(actor.token_id)
        if last is None or now - last >= service.LAST_USED_RESOLUTION:
            self._recorded[actor.token_id] = now
            async with UnitOfWork(self._db.write_session) as uow:
                await service.record_use(uow, actor=actor, now=now)
                await uow.commit()
        return actor

    def forget(self, token_id: int | None = None) -> None:
        """Drop what is cached about a token (all tokens when None): it changed."""
        if self._on_forget is not None:
            self._on_forget(token_id)
        if token_id is None:
            self._known.clear()
            self._keys.clear()
            return
        key = self._keys.pop(token_id, None)
        if key is not None:
            self._known.pop(key, None)

    async def _fetch(self, key: str) -> _Known:
        async with self._db.read_session() as session:
            row = await TokenRepository(session).get_by_hash(key)
        if row is None:
            self._known.pop(key, None)
            raise UnauthenticatedError("Invalid, disabled or expired token")
        return self._remember(key, row.id, row.owner, row.role, row.enabled, row.expires_at)

    def _remember(
        self,
        key: str,
        token_id: int,
        owner: str,
        role: TokenRole,
        enabled: bool,
        expires_at: datetime | None,
    ) -> _Known:
        known = _Known(token_id, owner, role, enabled, expires_at, time.monotonic())
        if self._ttl > 0:
            self._known[key] = known
            self._keys[token_id] = key
            self._known.move_to_end(key)
            while len(self._known) > MAX_CACHED:
                _, dropped = self._known.popitem(last=False)
                self._keys.pop(dropped.token_id, None)
        return known
