"""Batch node counters without a hot row: ``batch_node`` plus the deltas not folded yet.

Transitions append rows to ``batch_node_delta`` (db/repositories/moves.py); a
periodic task folds them into ``batch_node`` in one statement (``fold``). Readers
add what is still unfolded (``LIVE_NODES``): in any snapshot the sum is exact,
since a fold moves deltas into the base atomically.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, Subquery, func, literal_column, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from db.models import BatchNode, BatchNodeDelta

COUNTS = ("pending", "blocked", "queued", "running", "completed", "failed", "canceled")
SUMS = ("run_seconds_sum", "run_seconds_count", "job_seconds_sum", "job_seconds_count")
MINS = ("run_seconds_min", "job_seconds_min")
MAXES = ("run_seconds_max", "job_seconds_max")


class NodeCounts(NamedTuple):
    """One node of one batch, live: counts by status and duration aggregates."""

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
    last_changed_at: datetime | None


ZERO: ColumnElement[int] = literal_column("0")


def _live_nodes() -> Subquery:
    """Every batch node, live: the folded row plus its deltas not folded yet."""
    d = BatchNodeDelta.__table__.c
    pending = (
        select(
            d.batch_id,
            d.node,
            *[func.sum(d[c]).label(c) for c in (*COUNTS, *SUMS)],
            *[func.min(d[c]).label(c) for c in MINS],
            *[func.max(d[c]).label(c) for c in MAXES],
            func.max(d.at).label("at"),
        )
        .group_by(d.batch_id, d.node)
        .subquery("pending")
    )
    b = BatchNode.__table__.c
    return (
        select(
            b.batch_id,
            b.node,
            b.position,
            b.task_type_revision_id,
            # Constants as SQL text, not parameters: the compiled read path embeds this
            # selectable and binds only its own parameters.
            *[(b[c] + func.coalesce(pending.c[c], ZERO)).label(c) for c in COUNTS],
            *[(b[c] + func.coalesce(pending.c[c], ZERO)).label(c) for c in SUMS],
            *[func.least(b[c], pending.c[c]).label(c) for c in MINS],
            *[func.greatest(b[c], pending.c[c]).label(c) for c in MAXES],
            func.greatest(b.last_changed_at, pending.c.at).label("last_changed_at"),
        )
        .select_from(
            BatchNode.__table__.outerjoin(
                pending, (pending.c.batch_id == b.batch_id) & (pending.c.node == b.node)
            )
        )
        .subquery("node_counters")
    )


# The one selectable every reader of counters uses (resolvers, the compiled read path,
# subscriptions): PostgreSQL pushes a batch filter down into both of its parts.
LIVE_NODES = _live_nodes()


async def nodes(session: AsyncSession, batch_ids: Sequence[int]) -> list[list[NodeCounts]]:
    """Per batch (in key order), its live node rows in recipe order."""
    grouped: dict[int, list[NodeCounts]] = {i: [] for i in batch_ids}
    if batch_ids:
        c = LIVE_NODES.c
        rows = await session.execute(
            select(*[c[name] for name in NodeCounts._fields])
            .where(c.batch_id.in_(batch_ids))
            .order_by(c.batch_id, c.position)
        )
        for row in rows:
            grouped[row.batch_id].append(NodeCounts(*row))
    return [grouped[i] for i in batch_ids]


def last_change(
    batch_id: ColumnElement[int] | InstrumentedAttribute[int],
) -> ColumnElement[datetime]:
    """The newest counter change of a batch (folded or not): for ``lastModifiedAt``."""
    folded = (
        select(func.max(BatchNode.last_changed_at))
        .where(BatchNode.batch_id == batch_id)
        .scalar_subquery()
    )
    unfolded = (
        select(func.max(BatchNodeDelta.at))
        .where(BatchNodeDelta.batch_id == batch_id)
        .scalar_subquery()
    )
    return func.greatest(folded, unfolded)


_FOLD = text(
    """WITH d AS (DELETE FROM batch_node_delta RETURNING *),
s AS (
  SELECT batch_id, node, """
    + ", ".join(f"sum({c}) AS {c}" for c in (*COUNTS, *SUMS))
    + ", "
    + ", ".join(f"min({c}) AS {c}" for c in MINS)
    + ", "
    + ", ".join(f"max({c}) AS {c}" for c in MAXES)
    + """, max(at) AS at
  FROM d GROUP BY batch_id, node
)
UPDATE batch_node b SET """
    + ", ".join(f"{c} = b.{c} + s.{c}" for c in (*COUNTS, *SUMS))
    + ", "
    + ", ".join(f"{c} = least(b.{c}, s.{c})" for c in MINS)
    + ", "
    + ", ".join(f"{c} = greatest(b.{c}, s.{c})" for c in MAXES)
    + """, last_changed_at = greatest(b.last_changed_at, s.at)
FROM s WHERE b.batch_id = s.batch_id AND b.node = s.node"""
)


async def fold(session: AsyncSession) -> int:
    """Fold every visible delta into its node row (one statement); returns nodes touched.

    Run by one process at a time (the periodic task's advisory lock): deltas of
    transactions still open are not visible here and are left for the next fold.
    """
    result: Any = await session.execute(_FOLD)
    return int(result.rowcount or 0)
