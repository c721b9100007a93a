"""What the comparison of a re-processing chain reads: two statements, whatever its size.

1. ``chain``: the chain's batches in id order, with their workspace's public flag (the
   whole chain lives in one workspace) and their completed recipe counts;
2. ``counters.live_nodes``: every node of those batches, live (base + unfolded deltas),
   percentiles included.

Neither touches the jobs: a chain of 20 batches of 10,000 jobs reads 20 batch rows and
their node rows. Each is one selectable, so a compiled read path can embed it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Batch, Recipe, Workspace
from db.repositories import counters
from db.repositories.counters import NodeCounts


class ChainBatch(NamedTuple):
    batch: Batch
    is_public: bool  # its workspace is public
    recipes_completed: int


def chain_batches(root_batch_id: int) -> Select[Any]:
    """The batches whose root is ``root_batch_id`` (none when it names no root), oldest
    first, with what a comparison needs beside their nodes."""
    completed = (
        select(func.count())
        .where(Recipe.batch_id == Batch.id, Recipe.jobs_completed == Recipe.job_count)
        .correlate(Batch)
        .scalar_subquery()
    )
    return (
        select(Batch, Workspace.public, completed.label("recipes_completed"))
        .join(Workspace, Workspace.id == Batch.workspace_id)
        .where(Batch.root_batch_id == root_batch_id)
        .order_by(Batch.id)
    )


class ComparisonRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def chain(self, root_batch_id: int) -> list[ChainBatch]:
        rows = await self._session.execute(chain_batches(root_batch_id))
        return [ChainBatch(b, bool(public), int(done)) for b, public, done in rows]

    async def nodes(self, batch_ids: Sequence[int]) -> list[list[NodeCounts]]:
        return await counters.nodes(self._session, batch_ids)
