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


BUILTINS: dict[str, Implementation] = {
    "builtin.echo": echo,
    "builtin.sleep": sleep,
    "builtin.fail": fail,
}


@cache
def registry() -> dict[str, Implementation]:
    found = dict(BUILTINS)
    for point in entry_points(group=ENTRY_POINT_GROUP):
        found[point.name] = point.load()
    return found
