"""Task implementations the fleet runs, by the name in a task type's `implementation`.

Built-ins are here; packages add their own through the entry point group
``batchgraph.implementations`` (name = callable). A callable takes the job's
parameters (a dict) and returns the result (a dict), sync or async; it raises
TaskFailure to fail with a code and a category.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from functools import cache
from importlib.metadata import entry_points
from typing import Any

from domain.jobs.execution import TaskFailure

Implementation = Callable[[dict[str, Any]], dict[str, Any] | Awaitable[dict[str, Any]]]
ENTRY_POINT_GROUP = "batchgraph.implementations"


def echo(parameters: dict[str, Any]) -> dict[str, Any]:
    """Returns its parameters: the no-op of benchmarks and smoke tests."""
    return dict(parameters)


async def sleep(parameters: dict[str, Any]) -> dict[str, Any]:
    """Sleeps ``seconds`` (default 1): for time limits and cancellation."""
    seconds = float(parameters.get("seconds", 1))
    await asyncio.sleep(seconds)
    return {"slept": seconds}


def fail(parameters: dict[str, Any]) -> dict[str, Any]:
    """Fails with ``code`` and ``category`` (DOMAIN by default; INFRASTRUCTURE retries)."""
    raise TaskFailure(
        code=str(parameters.get("code", "FAILED_ON_PURPOSE")),
        message=str(parameters.get("message", "builtin.fail was asked to fail")),
        category=str(parameters.get("category", "DOMAIN")),
    )


MAX_SIMULATE_SECONDS = 60.0


async def simulate(parameters: dict[str, Any]) -> dict[str, Any]:
    """A stand-in for real work you can watch: waits ``seconds`` (default 1, at most 60)
    and returns its parameters; with ``failWith: {code, message, category}`` it fails
    that way instead (after the wait)."""
    try:
        seconds = min(max(float(parameters.get("seconds", 1)), 0.0), MAX_SIMULATE_SECONDS)
    except (TypeError, ValueError):
        raise TaskFailure("PARAMETERS_INVALID", "seconds must be a number") from None
    await asyncio.sleep(seconds)
    failure = parameters.get("failWith")
    if isinstance(failure, dict):
        raise TaskFailure(
            code=str(failure.get("code", "SIMULATED_FAILURE")),
            message=str(failure.get("message", "builtin.simulate was asked to fail")),
            category=str(failure.get("category", "DOMAIN")),
        )
    return dict(parameters)


BUILTINS: dict[str, Implementation] = {
    "builtin.echo": echo,
    "builtin.simulate": simulate,
    "builtin.sleep": sleep,
    "builtin.fail": fail,
}


@cache
def registry() -> dict[str, Implementation]:
    found = dict(BUILTINS)
    for point in entry_points(group=ENTRY_POINT_GROUP):
        found[point.name] = point.load()
    return found
