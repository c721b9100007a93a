"""What every process may keep of task type revisions and batch recipes: both are
immutable once written, so each is read once per process.

(Ids are never reused — unless a database is reset under running processes:
restart them, or call ``forget()``.)
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from db.uow import UnitOfWork
from domain.workers.rules import DEFAULT_TIMEOUT_SECONDS

EXTERNAL = "external"
_MAX = 10_000


@dataclass(frozen=True, slots=True)
class Revision:
    id: int
    implementation: str
    timeout_seconds: int | None
    max_attempts: int
    result_schema: dict[str, Any]
    requirements: dict[str, Any]

    @property
    def is_external(self) -> bool:
        return self.implementation == EXTERNAL


@dataclass(frozen=True, slots=True)
class RecipeShape:
    """A batch's recipe as the engine needs it: which nodes others wait for."""

    nodes_with_dependents: frozenset[str]
    revision_ids: tuple[int, ...]


_REVISIONS: dict[int, Revision] = {}
_SHAPES: dict[int, RecipeShape] = {}
# What connected fleet workers offer changes only as workers come and go: read it at
# most every few seconds per process.
OFFERS_TTL_SECONDS = 2.0
_offers: tuple[float, frozenset[str]] | None = None


def forget() -> None:
    global _offers
    _REVISIONS.clear()
    _SHAPES.clear()
    _offers = None


async def fleet_offers(uow: UnitOfWork) -> frozenset[str]:
    """The implementations connected fleet workers offer (empty: none is connected)."""
    global _offers
    now = time.monotonic()
    if _offers is None or now - _offers[0] > OFFERS_TTL_SECONDS:
        cutoff = datetime.now(UTC) - timedelta(seconds=DEFAULT_TIMEOUT_SECONDS)
        _offers = (now, await uow.workers.fleet_implementations(cutoff=cutoff))
    return _offers[1]


async def revisions(uow: UnitOfWork, ids: Iterable[int]) -> dict[int, Revision]:
    wanted = set(ids)
    missing = [i for i in wanted if i not in _REVISIONS]
    if missing:
        for row in await uow.task_types.get_revisions_by_id(missing):
            if row is None:
                continue
            found = Revision(
                row.id,
                row.implementation,
                row.timeout_seconds,
                row.max_attempts,
                row.result_schema,
                row.requirements,
            )
            if len(_REVISIONS) >= _MAX:
                _REVISIONS.clear()
            _REVISIONS[row.id] = found
    return {i: _REVISIONS[i] for i in wanted if i in _REVISIONS}


async def revision(uow: UnitOfWork, revision_id: int) -> Revision:
    found = await revisions(uow, [revision_id])
    return found[revision_id]


async def shapes(uow: UnitOfWork, batch_ids: Sequence[int]) -> dict[int, RecipeShape]:
    wanted = set(batch_ids)
    missing = [i for i in wanted if i not in _SHAPES]
    if missing:
        for batch_id, recipe in await uow.batches.recipes_of(missing):
            remember_shape(batch_id, recipe)
    return {i: _SHAPES[i] for i in wanted if i in _SHAPES}


def remember_shape(batch_id: int, recipe: dict[str, Any]) -> None:
    """What the engine needs of a batch's (immutable) recipe."""
    nodes = recipe.get("nodes", [])
    waited_for = {dep for n in nodes for dep in n.get("dependsOn", [])}
    if len(_SHAPES) >= _MAX:
        _SHAPES.clear()
    _SHAPES[batch_id] = RecipeShape(
        nodes_with_dependents=frozenset(waited_for),
        revision_ids=tuple(int(n["revisionId"]) for n in nodes),
    )
