"""Whether a token still holds, for connections that outlive a request (subscriptions).

A websocket authenticates once, at connection_init; a token disabled or expiring
afterwards must stop its streams. Each delivery asks here: the token's row is
read at most once per ``ttl`` per process (so a disabled token stops within
``ttl``), while expiry is checked against the clock on every delivery.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

from db.repositories.token import TokenRepository
from db.session import Database
from domain.auth.rules import is_usable


@dataclass(frozen=True, slots=True)
class _Seen:
    at: float  # time.monotonic()
    enabled: bool
    expires_at: datetime | None


class TokenStatus:
    MAX_ENTRIES = 10_000

    def __init__(self, db: Database, *, ttl: float) -> None:
        self._db = db
        self._ttl = ttl
        self._seen: dict[int, _Seen] = {}

    async def usable(self, token_id: int, *, now: datetime) -> bool:
        seen = self._seen.get(token_id)
        if seen is None or time.monotonic() - seen.at >= self._ttl:
            async with self._db.read_session() as session:
                token = await TokenRepository(session).get(token_id)
            seen = _Seen(
                at=time.monotonic(),
                enabled=token is not None and token.enabled,
                expires_at=token.expires_at if token is not None else None,
            )
            if len(self._seen) >= self.MAX_ENTRIES:
                self._seen.clear()
            self._seen[token_id] = seen
        return is_usable(enabled=seen.enabled, expires_at=seen.expires_at, now=now)
