"""Actors by wire name. ``declare_actors`` binds them to a broker (the worker's or a test's)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import dramatiq

from jobs.actors import batches, run, tasktypes
from jobs.broker import CONTROL_ACTORS, queue_of

ACTORS: dict[str, Callable[..., Awaitable[None]]] = {
    "tasktypes.check_in": tasktypes.check_in,
    "batches.create_chunk": batches.create_chunk,
    "jobs.run": run.run,
}

# Domain refusals are not retried (actors return quietly on them); what is left
# to retry is infrastructure trouble, a few times with back-off.
ACTOR_OPTIONS: dict[str, Any] = {"max_retries": 5, "min_backoff": 500, "max_backoff": 30_000}
# A job's own timeout (at most 7 days) limits its run; Dramatiq's 10-minute
# default per message must not cut it short.
OPTIONS_BY_ACTOR: dict[str, dict[str, Any]] = {
    "jobs.run": {"time_limit": 7 * 24 * 3600 * 1000 + 60_000},
}


def declare_actors(broker: dramatiq.Broker) -> dict[str, dramatiq.Actor[Any, Any]]:
    return {
        name: dramatiq.Actor(
            fn,
            broker=broker,
            actor_name=name,
            queue_name=queue_of(name),
            # Lower runs first when a worker holds several messages: control before jobs.
            priority=-10 if name in CONTROL_ACTORS else 0,
            options={**ACTOR_OPTIONS, **OPTIONS_BY_ACTOR.get(name, {})},
        )
        for name, fn in ACTORS.items()
    }
