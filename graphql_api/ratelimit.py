"""Budgets of points per minute, per token (per client address for anonymous callers).

An operation spends ``points(cost, input_values)``: one point per started hundred
objects of its cost, at least one (GitHub's rule of thumb), plus one per whole
``INPUT_VALUES_PER_POINT`` JSON values in its variables. The answer is not the only
work: validating a batch of 100,000 input items took ~2 s of CPU for 1 point, and
four in one request 5 s for 4. Small inputs add nothing; a 100,000-item batch of
three-field items (about 400,000 values) costs 2,000 points, within the default
budget of 10,000 a minute. The accounting is the `limits`
library's sliding window counter, in this process's memory: with several API
processes each keeps its own budgets.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from limits import RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from starlette.requests import HTTPConnection

from domain.auth.rules import Actor

POINTS_PER_OBJECT = 100
# About a millisecond of validation work, as a hundred answered objects is.
INPUT_VALUES_PER_POINT = 200


def points(cost: int, input_values: int = 0) -> int:
    return max(1, math.ceil(cost / POINTS_PER_OBJECT)) + input_values // INPUT_VALUES_PER_POINT


def identity(actor: Actor | None, connection: HTTPConnection | None) -> str:
    """Whose budget pays: the token's, or the client address's for anonymous calls."""
    if actor is not None:
        return f"token:{actor.token_id}"
    client = connection.client if connection is not None else None
    return f"address:{client.host if client is not None else 'unknown'}"


@dataclass(frozen=True, slots=True)
class Spent:
    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int  # until the budget is whole again (at most a minute)

    def headers(self) -> dict[str, str]:
        found = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_seconds),
        }
        if not self.allowed:
            found["Retry-After"] = str(max(1, self.reset_seconds))
        return found


class Budgets:
    def __init__(self, points_per_minute: int) -> None:
        self.item = RateLimitItemPerMinute(points_per_minute)
        self.limiter = SlidingWindowCounterRateLimiter(MemoryStorage())

    async def has_some(self, who: str) -> Spent:
        """Whether ``who`` has a point left, spending nothing (checked at the door)."""
        allowed = await self.limiter.test(self.item, who)
        return await self._stats(who, allowed)

    async def spend(self, who: str, amount: int) -> Spent:
        allowed = await self.limiter.hit(self.item, who, cost=amount)
        return await self._stats(who, allowed)

    async def _stats(self, who: str, allowed: bool) -> Spent:
        stats = await self.limiter.get_window_stats(self.item, who)
        return Spent(
            allowed=allowed,
            limit=self.item.amount,
            remaining=max(0, stats.remaining),
            reset_seconds=max(0, math.ceil(stats.reset_time - time.time())),
        )
