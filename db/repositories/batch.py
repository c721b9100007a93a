from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, NamedTuple, Protocol, cast

from sqlalchemy import Select, String, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlalchemy.sql import FromClause

from db.enums import JobStatus
from db.models import Batch, BatchItem, BatchNode, Recipe, Workspace
from db.repositories.pagination import Page, SortKey, count, keyset_page


class BatchOrder(StrEnum):
    ID = "ID"
    TITLE = "TITLE"
    CREATED = "CREATED"
    LAST_MODIFIED = "LAST_MODIFIED"


@dataclass(frozen=True, slots=True)
class BatchFilter:
    public_only: bool = False
    workspace: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    task_type: str | None = None
    is_creation_done: bool | None = None
    is_superseded: bool | None = None
    root_batch_id: int | None = None


_COUNT_COLUMN = {status: status.value.lower() for status in JobStatus}

# Where batch counters and per-node metrics are read from, by every reader (the
# resolvers, the compiled read path, subscriptions): one row per batch and node with
# the columns of ``batch_node`` (batch_id, node, position, task_type_revision_id, one
# count per status, run_/job_seconds_min/max/sum/count). Today the table itself; swap
# it for a view (e.g. folded counters plus pending deltas) and every reader follows.
NODE_COUNTERS: FromClause = BatchNode.__table__


class NodeCounters(Protocol):
    """One row of NODE_COUNTERS."""

    batch_id: int
    node: str
    position: int
    task_type_revision_id: int
    pending: int
    blocked: int
    queued: int
    running: int
    completed: int
    failed: int
    canceled: int
    run_seconds_min: float | None
    run_seconds_max: float | None
    run_seconds_sum: float
    run_seconds_count: int
    job_seconds_min: float | None
    job_seconds_max: float | None
    job_seconds_sum: float
    job_seconds_count: int


class NewRecipe(NamedTuple):
    id: int
    position: int
    item: dict[str, Any]


class BatchRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    def add(self, row: Batch | BatchNode) -> None:
        self._session.add(row)

    async def flush(self) -> None:
        await self._session.flush()

    async def get(self, batch_id: int, *, for_update: bool = False) -> Batch | None:
        stmt = select(Batch).where(Batch.id == batch_id)
        if for_update:
            stmt = stmt.with_for_update(key_share=True)
        return await self._session.scalar(stmt)

    async def get_many(self, ids: Sequence[int]) -> list[Batch | None]:
        rows = await self._session.scalars(select(Batch).where(Batch.id.in_(ids)))
        by_id = {row.id: row for row in rows}
        return [by_id.get(i) for i in ids]

    async def latest_in_chain(self, root_id: int, *, for_update: bool = False) -> Batch | None:
        """The one batch of a chain that is not superseded."""
        stmt = select(Batch).where(Batch.root_batch_id == root_id, Batch.is_superseded.is_(False))
        if for_update:
            stmt = stmt.with_for_update(key_share=True)
        return await self._session.scalar(stmt)

    async def stalled_creations(self, cutoff: datetime, *, limit: int) -> list[tuple[int, int]]:
        """(id, cursor) of batches still creating with no progress since ``cutoff``."""
        rows = await self._session.execute(
            select(Batch.id, Batch.creation_cursor)
            .where(Batch.is_creation_done.is_(False), Batch.last_modified_at < cutoff)
            .order_by(Batch.id)
            .limit(limit)
        )
        return [(int(i), int(c)) for i, c in rows]

    async def next_batches(self, ids: Sequence[int]) -> list[Batch | None]:
        """For each batch id, the batch that superseded it (None if none), in key order."""
        rows = await self._session.scalars(select(Batch).where(Batch.superseded_batch_id.in_(ids)))
        by_prev = {row.superseded_batch_id: row for row in rows}
        return [by_prev.get(i) for i in ids]

    # --- nodes (counters and durations) ------------------------------------

    async def nodes(self, batch_ids: Sequence[int]) -> list[list[NodeCounters]]:
        """Counters and durations per node of each batch, in recipe order (NODE_COUNTERS)."""
        c = NODE_COUNTERS.c
        rows = await self._session.execute(
            select(NODE_COUNTERS).where(c.batch_id.in_(batch_ids)).order_by(c.batch_id, c.position)
        )
        grouped: dict[int, list[NodeCounters]] = {i: [] for i in batch_ids}
        for row in rows:
            grouped[row.batch_id].append(cast(NodeCounters, row))
        return [grouped[i] for i in batch_ids]

    async def add_counts(
        self,
        batch_id: int,
        node: str,
        deltas: dict[JobStatus, int],
        *,
        run: float | None = None,
        job: float | None = None,
    ) -> None:
        """Atomic increments: concurrent transitions serialise on the row, never lose counts.

        ``run``/``job``: a completed job's durations, folded into the same statement.
        """
        if not any(deltas.values()):
            return
        col = BatchNode.__table__.c
        values: dict[str, Any] = {
            _COUNT_COLUMN[s]: col[_COUNT_COLUMN[s]] + d for s, d in deltas.items() if d
        }
        values |= _duration_values(run=run, job=job)
        await self._session.execute(
            update(BatchNode)
            .where(BatchNode.batch_id == batch_id, BatchNode.node == node)
            .values(**values)
        )

    async def completed_recipe_counts(self, batch_ids: Sequence[int]) -> list[int]:
        rows = await self._session.execute(
            select(Recipe.batch_id, func.count())
            .where(Recipe.batch_id.in_(batch_ids), Recipe.jobs_completed == Recipe.job_count)
            .group_by(Recipe.batch_id)
        )
        found: dict[int, int] = {int(b): int(n) for b, n in rows}
        return [found.get(i, 0) for i in batch_ids]

    # --- items and recipes ---------------------------------------------------

    async def add_items(self, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            await self._session.execute(insert(BatchItem), list(rows))

    async def items(self, batch_id: int, *, start: int, limit: int) -> list[BatchItem]:
        rows = await self._session.scalars(
            select(BatchItem)
            .where(BatchItem.batch_id == batch_id, BatchItem.position >= start)
            .order_by(BatchItem.position)
            .limit(limit)
        )
        return list(rows)

    async def insert_recipes(self, rows: Sequence[dict[str, Any]]) -> list[NewRecipe]:
        """Insert the recipes that do not exist yet; return all of those positions."""
        if not rows:
            return []
        await self._session.execute(
            pg_insert(Recipe).on_conflict_do_nothing(index_elements=["batch_id", "position"]),
            list(rows),
        )
        batch_id = rows[0]["batch_id"]
        positions = [r["position"] for r in rows]
        found = await self._session.execute(
            select(Recipe.id, Recipe.position, Recipe.item)
            .where(Recipe.batch_id == batch_id, Recipe.position.in_(positions))
            .order_by(Recipe.position)
        )
        return [NewRecipe(*row) for row in found]

    async def complete_one_job(self, recipe_id: int) -> None:
        """Count a completed job on its recipe (complete when all its jobs are)."""
        await self._session.execute(
            update(Recipe)
            .where(Recipe.id == recipe_id)
            .values(jobs_completed=Recipe.jobs_completed + 1)
        )

    async def recipes_page(
        self, batch_id: int, *, after: SortKey | None, first: int
    ) -> Page[Recipe]:
        stmt = select(Recipe).where(Recipe.batch_id == batch_id)
        return await keyset_page(
            self._session, stmt, key=[Recipe.position], after=after, first=first
        )

    async def first_recipes_per_batch(
        self, batch_ids: Sequence[int], *, first: int
    ) -> list[Page[Recipe]]:
        """The first page of recipes of each batch, in one statement (for DataLoaders)."""
        ranked = (
            select(
                Recipe,
                func.row_number()
                .over(partition_by=Recipe.batch_id, order_by=Recipe.position)
                .label("n"),
            )
            .where(Recipe.batch_id.in_(batch_ids))
            .subquery()
        )
        recipe = aliased(Recipe, ranked)
        rows = await self._session.scalars(
            select(recipe).where(ranked.c.n <= first + 1).order_by(recipe.batch_id, recipe.position)
        )
        grouped: dict[int, list[Recipe]] = {i: [] for i in batch_ids}
        for row in rows:
            grouped[row.batch_id].append(row)
        return [
            Page(items=g[:first], keys=[(r.position,) for r in g[:first]], has_next=len(g) > first)
            for g in (grouped[i] for i in batch_ids)
        ]

    async def chains(self, root_ids: Sequence[int]) -> list[list[Batch]]:
        rows = await self._session.scalars(
            select(Batch).where(Batch.root_batch_id.in_(root_ids)).order_by(Batch.id)
        )
        grouped: dict[int, list[Batch]] = {i: [] for i in root_ids}
        for row in rows:
            grouped[row.root_batch_id or row.id].append(row)
        return [grouped[i] for i in root_ids]

    async def get_recipes(self, ids: Sequence[int]) -> list[Recipe | None]:
        rows = await self._session.scalars(select(Recipe).where(Recipe.id.in_(ids)))
        by_id = {row.id: row for row in rows}
        return [by_id.get(i) for i in ids]

    # --- listing ---------------------------------------------------------------

    def _listing(self, flt: BatchFilter) -> Select[Batch]:
        stmt = select(Batch)
        if flt.public_only or flt.workspace is not None:
            stmt = stmt.join(Workspace, Workspace.id == Batch.workspace_id)
        if flt.public_only:
            stmt = stmt.where(Workspace.public.is_(True))
        if flt.workspace is not None:
            stmt = stmt.where(Workspace.name == flt.workspace)
        if flt.created_after is not None:
            stmt = stmt.where(Batch.created_at >= flt.created_after)
        if flt.created_before is not None:
            stmt = stmt.where(Batch.created_at < flt.created_before)
        if flt.is_creation_done is not None:
            stmt = stmt.where(Batch.is_creation_done.is_(flt.is_creation_done))
        if flt.is_superseded is not None:
            stmt = stmt.where(Batch.is_superseded.is_(flt.is_superseded))
        if flt.root_batch_id is not None:
            stmt = stmt.where(Batch.root_batch_id == flt.root_batch_id)
        if flt.task_type is not None:
            # JSONB containment: some node of the recipe runs this task type.
            stmt = stmt.where(Batch.recipe.contains({"nodes": [{"taskType": flt.task_type}]}))
        return stmt

    async def page(
        self,
        flt: BatchFilter,
        order: BatchOrder,
        *,
        descending: bool,
        after: SortKey | None,
        first: int,
    ) -> Page[Batch]:
        return await keyset_page(
            self._session,
            self._listing(flt),
            key=_order_key(order),
            after=after,
            first=first,
            descending=descending,
        )

    async def count(self, flt: BatchFilter) -> int:
        return await count(self._session, self._listing(flt))


ORDER_KEYS: dict[BatchOrder, list[Any]] = {
    BatchOrder.ID: [Batch.id],
    BatchOrder.TITLE: [func.lower(Batch.title, type_=String), Batch.id],  # case-insensitive
    BatchOrder.CREATED: [Batch.created_at, Batch.id],
    BatchOrder.LAST_MODIFIED: [Batch.last_modified_at, Batch.id],
}


def _order_key(order: BatchOrder) -> list[Any]:
    return ORDER_KEYS[order]


def _duration_values(*, run: float | None, job: float | None) -> dict[str, Any]:
    """min / max / sum / count updates for a completed job's run and job durations."""
    c = BatchNode.__table__.c
    values: dict[str, Any] = {}
    for prefix, seconds in (("run", run), ("job", job)):
        if seconds is not None:
            values |= {
                f"{prefix}_seconds_min": func.least(c[f"{prefix}_seconds_min"], seconds),
                f"{prefix}_seconds_max": func.greatest(c[f"{prefix}_seconds_max"], seconds),
                f"{prefix}_seconds_sum": c[f"{prefix}_seconds_sum"] + seconds,
                f"{prefix}_seconds_count": c[f"{prefix}_seconds_count"] + 1,
            }
    return values
