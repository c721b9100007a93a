"""Whether a token still holds, for connections that outlive a request (websockets).

A websocket authenticates once, at connection_init; a token disabled or expiring
afterwards must end the connection within ``ttl`` (BATCHGRAPH_TOKEN_RECHECK_SECONDS,
5 s), idle or not:

* every subscribe and every delivery (replays included) asks ``usable``: the token's
  row as read at most ``ttl`` ago — dropped at once when the token changes
  (``forget``, called for the token table's NOTIFY and after a listener RESYNC) —
  with the expiry compared to the clock each time;
* a watcher closes connections that send nothing too: every ``tick`` it checks the
  token of each watched connection, re-reading in one query the rows older than
  ``ttl - tick`` (so a change nobody announced is still seen within ``ttl``), and
  at once when a change is announced.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from db.repositories.token import TokenRepository
from db.session import Database
from domain.auth.rules import Actor, is_usable

log = logging.getLogger(__name__)

TICK_SECONDS = 1.0
Close = Callable[[], Awaitable[None]]

_STATUSES: weakref.WeakSet[TokenStatus] = weakref.WeakSet()


def forget_tokens() -> None:
    """For a database whose token ids restart (tests): every process view starts over.
    (Callable from any thread: it only drops what was read.)"""
    for status in list(_STATUSES):
        status._generation += 1
        status._seen.clear()


@dataclass(frozen=True, slots=True)
class _Seen:
    at: float  # time.monotonic()
    enabled: bool
    expires_at: datetime | None


class TokenStatus:
    MAX_ENTRIES = 10_000

    def __init__(self, db: Database, *, ttl: float, tick: float = TICK_SECONDS) -> None:
        self._db = db
        self._ttl = ttl
        self._tick = min(tick, ttl) if ttl > 0 else tick
        self._seen: dict[int, _Seen] = {}
        self._watched: dict[int, dict[int, Close]] = {}  # token id → {watch id: close}
        self._next_watch = 0
        self._generation = 0  # bumped by every forget
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing: set[asyncio.Task[None]] = set()
        _STATUSES.add(self)

    # --- asking ------------------------------------------------------------------

    async def holds(self, actor: Actor | None) -> bool:
        """Whether the actor's token still holds; True for no token (anonymous, internal)."""
        if actor is None or actor.token_id == 0:
            return True
        return await self.usable(actor.token_id, now=datetime.now(UTC))

    async def usable(self, token_id: int, *, now: datetime) -> bool:
        seen = (await self._states([token_id], max_age=self._ttl))[token_id]
        return is_usable(enabled=seen.enabled, expires_at=seen.expires_at, now=now)

    def forget(self, token_id: int | None = None) -> None:
        """The token changed (None: any may have): read it again, and check the watched
        connections now."""
        if token_id is None:
            self._seen.clear()
        else:
            self._seen.pop(token_id, None)
        self._generation += 1
        self._wake.set()

    async def _states(self, token_ids: list[int], *, max_age: float) -> dict[int, _Seen]:
        """Each token's row as read within ``max_age``; the older ones read in one query."""
        started = time.monotonic()
        found: dict[int, _Seen] = {}
        stale: list[int] = []
        for token_id in token_ids:
            seen = self._seen.get(token_id)
            if seen is None or started - seen.at >= max_age:
                stale.append(token_id)
            else:
                found[token_id] = seen
        if not stale:
            return found
        generation = self._generation
        async with self._db.read_session() as session:
            rows = await TokenRepository(session).get_many(stale)
        read = {
            token_id: _Seen(
                at=started,
                enabled=row is not None and row.enabled,
                expires_at=row.expires_at if row is not None else None,
            )
            for token_id, row in zip(stale, rows, strict=True)
        }
        found |= read
        # A change announced while reading may postdate what was read: keep nothing
        # (the announcement woke the watcher, which reads again).
        if generation == self._generation:
            if len(self._seen) + len(read) > self.MAX_ENTRIES:
                self._seen.clear()
            self._seen |= read
        return found

    # --- watching ----------------------------------------------------------------

    @contextlib.contextmanager
    def watch(self, actor: Actor | None, close: Close) -> Iterator[None]:
        """While inside, ``close`` is awaited (once) when the actor's token stops holding."""
        if actor is None or actor.token_id == 0:
            yield
            return
        self._next_watch += 1
        watch_id = self._next_watch
        self._watched.setdefault(actor.token_id, {})[watch_id] = close
        try:
            yield
        finally:
            closers = self._watched.get(actor.token_id)
            if closers is not None:
                closers.pop(watch_id, None)
                if not closers:
                    del self._watched[actor.token_id]

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="token-watcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._tick)
                self._wake.clear()
                await self.check()
            except asyncio.CancelledError:
                raise
            except Exception:  # the database is away: try again at the next tick
                log.warning("could not re-check the tokens of open connections", exc_info=True)
                await asyncio.sleep(self._tick)

    async def check(self) -> int:
        """Close the watched connections whose token no longer holds; how many."""
        if not self._watched:
            return 0
        states = await self._states(list(self._watched), max_age=max(self._ttl - self._tick, 0.0))
        now = datetime.now(UTC)
        revoked = [
            token_id
            for token_id, seen in states.items()
            if token_id in self._watched
            and not is_usable(enabled=seen.enabled, expires_at=seen.expires_at, now=now)
        ]
        closes = [close for t in revoked for close in self._watched.pop(t).values()]
        for close in closes:  # one slow socket must not hold back the others
            task = asyncio.create_task(_close(close))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        return len(closes)


async def _close(close: Close) -> None:
    try:
        await close()
    except Exception:  # the socket went away meanwhile
        log.debug("closing a connection whose token was revoked failed", exc_info=True)
