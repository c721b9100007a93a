from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, NamedTuple

from sqlalchemy import DateTime, Select, String, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlalchemy.sql import FromClause

from db.jsontext import json_texts
from db.models import Batch, BatchItem, BatchNode, Recipe, Workspace
from db.repositories import counters
from db.repositories.counters import NodeCounts
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


class ItemRow(NamedTuple):
    position: int
    value: Any
    previous_recipe_id: int | None
    nodes: Sequence[str] | None  # None: every node of the recipe


# Where batch counters and per-node metrics are read from, by every reader (the
# resolvers, the compiled read path, subscriptions): one row per batch and node with
# the columns of ``batch_node`` (batch_id, node, position, task_type_revision_id, one
# count per status, run_/job_seconds_min/max/sum/count, last_changed_at): the folded
# rows plus the deltas not folded yet (db/repositories/counters.py).
NODE_COUNTERS: FromClause = counters.LIVE_NODES


NodeCounters = NodeCounts


class RecipeItem(NamedTuple):
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

    async def nodes(self, batch_ids: Sequence[int]) -> list[list[NodeCounts]]:
        """Live counters per node (folded + pending deltas), per batch in key order."""
        return await counters.nodes(self._session, batch_ids)

    async def last_changes(self, batch_ids: Sequence[int]) -> list[datetime | None]:
        """Per batch, when it or its jobs last changed: its lastModifiedAt."""
        rows = await self._session.execute(
            select(Batch.id, _live_last_modified()).where(Batch.id.in_(batch_ids))
        )
        found: dict[int, datetime | None] = {int(i): at for i, at in rows}
        return [found.get(i) for i in batch_ids]

    async def dispatch_room(self, batch_id: int) -> int | None:
        """How many more jobs the batch may have QUEUED or RUNNING now (None: no batch).

        ``maxParallelJobs`` minus its live QUEUED and RUNNING counts; unbounded when
        the batch sets no cap.
        """
        row = (
            await self._session.execute(select(Batch.max_parallel_jobs).where(Batch.id == batch_id))
        ).first()
        if row is None:
            return None
        cap = row[0]
        if cap is None:
            return UNBOUNDED
        return int(cap) - await self.active_count(batch_id)

    async def active_count(self, batch_id: int) -> int:
        """The batch's live QUEUED and RUNNING counts (maxParallelJobs counts those)."""
        [nodes] = await counters.nodes(self._session, [batch_id])
        return sum(n.queued + n.running for n in nodes)

    async def recipes_of(self, batch_ids: Sequence[int]) -> list[tuple[int, dict[str, Any]]]:
        rows = await self._session.execute(
            select(Batch.id, Batch.recipe).where(Batch.id.in_(batch_ids))
        )
        return [(int(i), recipe) for i, recipe in rows]

    async def completed_recipe_counts(self, batch_ids: Sequence[int]) -> list[int]:
        rows = await self._session.execute(
            select(Recipe.batch_id, func.count())
            .where(Recipe.batch_id.in_(batch_ids), Recipe.jobs_completed == Recipe.job_count)
            .group_by(Recipe.batch_id)
        )
        found: dict[int, int] = {int(b): int(n) for b, n in rows}
        return [found.get(i, 0) for i in batch_ids]

    # --- items and recipes ---------------------------------------------------

    async def add_items(self, batch_id: int, items: Sequence[ItemRow]) -> None:
        """The input items, in one statement whatever their number."""
        if not items:
            return
        await self._session.execute(
            text(
                """INSERT INTO batch_item (batch_id, position, value, previous_recipe_id, nodes)
                SELECT :batch, u.position, CAST(u.value AS jsonb), u.previous_recipe_id,
                       string_to_array(u.nodes, ',')
                FROM unnest(CAST(:positions AS int[]), CAST(:values AS text[]),
                            CAST(:previous AS bigint[]), CAST(:nodes AS text[]))
                  AS u(position, value, previous_recipe_id, nodes)"""
            ),
            {
                "batch": batch_id,
                "positions": [i.position for i in items],
                "values": json_texts(i.value for i in items),
                "previous": [i.previous_recipe_id for i in items],
                "nodes": [",".join(i.nodes) if i.nodes is not None else None for i in items],
            },
        )

    async def item_count(self, batch_id: int) -> int:
        """How many input items the batch stored (positions are 0 … n-1)."""
        found = await self._session.scalar(
            select(func.max(BatchItem.position)).where(BatchItem.batch_id == batch_id)
        )
        return 0 if found is None else int(found) + 1

    async def all_recipes(self, batch_id: int) -> list[RecipeItem]:
        """Every recipe of a batch, by position, in one statement (for re-processing)."""
        rows = await self._session.execute(
            select(Recipe.id, Recipe.position, Recipe.item)
            .where(Recipe.batch_id == batch_id)
            .order_by(Recipe.position)
        )
        return [RecipeItem(int(i), int(p), item) for i, p, item in rows]

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


def _live_last_modified() -> Any:
    """The batch's own edits, or its jobs' newest change, whichever is later."""
    # Typed: a cursor on this key is checked against its column type
    # (pagination.check_cursor), and an untyped greatest() refused every cursor.
    return func.greatest(
        Batch.last_modified_at, counters.last_change(Batch.id), type_=DateTime(timezone=True)
    )


UNBOUNDED = 1_000_000_000

ORDER_KEYS: dict[BatchOrder, list[Any]] = {
    BatchOrder.ID: [Batch.id],
    BatchOrder.TITLE: [func.lower(Batch.title, type_=String), Batch.id],  # case-insensitive
    BatchOrder.CREATED: [Batch.created_at, Batch.id],
    BatchOrder.LAST_MODIFIED: [_live_last_modified(), Batch.id],
}


def _order_key(order: BatchOrder) -> list[Any]:
    return ORDER_KEYS[order]
