"""Batch node counters without a hot row: ``batch_node`` plus the deltas not folded yet.

Transitions append rows to ``batch_node_delta`` (db/repositories/moves.py); a
periodic task folds them into ``batch_node`` in one statement (``fold``). Readers
add what is still unfolded (``LIVE_NODES``): in any snapshot the sum is exact,
since a fold moves deltas into the base atomically.

Counts, min, max and sums (so averages) fold from deltas; percentiles do not. The
same fold statement recomputes p50/p95 (``percentile_cont``) for the nodes whose
COMPLETED jobs changed since the last fold — one aggregate over their jobs, however
many transitions led there — and announces those batches on ``METRICS``
(NOTIFY, sent at commit). So p50/p95 lag the live values by at most one fold.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import ColumnElement, Subquery, func, literal_column, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from db.events import METRICS
from db.models import BatchNode, BatchNodeDelta

# Past this many batches in one notice, it says "every batch" (null): a NOTIFY payload
# must stay under 8,000 bytes.
MAX_BATCHES_PER_NOTICE = 200
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
    # As of the last fold that saw this node's COMPLETED jobs change (see ``fold``).
    run_seconds_p50: float | None = None
    run_seconds_p95: float | None = None
    job_seconds_p50: float | None = None
    job_seconds_p95: float | None = None
    percentiles_completed: int = 0
    percentiles_at: datetime | None = None


PERCENTILES = (
    "run_seconds_p50",
    "run_seconds_p95",
    "job_seconds_p50",
    "job_seconds_p95",
    "percentiles_completed",
    "percentiles_at",
)


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
            *[b[c] for c in PERCENTILES],
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


# A job's durations, as db/repositories/moves.py counts them into the deltas.
_RUN = "j.run_seconds"
_JOB = (
    "CASE WHEN j.started_at IS NOT NULL"
    " THEN greatest(extract(epoch FROM j.completed_at - j.started_at), 0) END"
)

_FOLD = text(
    """WITH d AS (DELETE FROM batch_node_delta RETURNING *),
s AS (
  SELECT batch_id, node, """
    + ", ".join(f"sum({c}) AS {c}" for c in (*COUNTS, *SUMS))
    + ", "
    + ", ".join(f"min({c}) AS {c}" for c in MINS)
    + ", "
    + ", ".join(f"max({c}) AS {c}" for c in MAXES)
    + """, max(at) AS at,
         -- its COMPLETED jobs changed: percentiles to recompute
         bool_or(completed <> 0 OR run_seconds_count <> 0 OR job_seconds_count <> 0) AS timed
  FROM d GROUP BY batch_id, node
),
p AS (
  SELECT j.batch_id, j.node,
         percentile_cont(ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY """
    + _RUN
    + """) AS run_p,
         percentile_cont(ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY """
    + _JOB
    + """) AS job_p,
         count(*) AS n
  FROM s JOIN job j ON j.batch_id = s.batch_id AND j.node = s.node AND j.status = 'COMPLETED'
  WHERE s.timed
  GROUP BY j.batch_id, j.node
),
u AS (
  UPDATE batch_node b SET """
    + ", ".join(f"{c} = b.{c} + s.{c}" for c in (*COUNTS, *SUMS))
    + ", "
    + ", ".join(f"{c} = least(b.{c}, s.{c})" for c in MINS)
    + ", "
    + ", ".join(f"{c} = greatest(b.{c}, s.{c})" for c in MAXES)
    + """, last_changed_at = greatest(b.last_changed_at, s.at),
    run_seconds_p50 = CASE WHEN s.timed THEN p.run_p[1] ELSE b.run_seconds_p50 END,
    run_seconds_p95 = CASE WHEN s.timed THEN p.run_p[2] ELSE b.run_seconds_p95 END,
    job_seconds_p50 = CASE WHEN s.timed THEN p.job_p[1] ELSE b.job_seconds_p50 END,
    job_seconds_p95 = CASE WHEN s.timed THEN p.job_p[2] ELSE b.job_seconds_p95 END,
    percentiles_completed = CASE WHEN s.timed THEN coalesce(p.n, 0)
                                 ELSE b.percentiles_completed END,
    percentiles_at = CASE WHEN s.timed THEN now() ELSE b.percentiles_at END
  FROM s LEFT JOIN p ON p.batch_id = s.batch_id AND p.node = s.node
  WHERE b.batch_id = s.batch_id AND b.node = s.node
  RETURNING b.batch_id, s.timed
),
n AS (
  SELECT count(*) AS nodes, count(*) FILTER (WHERE timed) AS recomputed,
         json_agg(DISTINCT batch_id ORDER BY batch_id) FILTER (WHERE timed) AS batches
  FROM u
)
SELECT n.nodes, n.recomputed
FROM n LEFT JOIN LATERAL (
  SELECT pg_notify('"""
    + METRICS
    + """', json_build_object('batches',
           CASE WHEN json_array_length(n.batches) > """
    + str(MAX_BATCHES_PER_NOTICE)
    + """ THEN NULL ELSE n.batches END)::text)
  WHERE n.batches IS NOT NULL
) x ON true"""
)


class Folded(NamedTuple):
    nodes: int  # node rows that took deltas
    recomputed: int  # of which their percentiles were recomputed


async def fold(session: AsyncSession) -> Folded:
    """Fold every visible delta into its node row, and recompute the percentiles of
    the nodes whose COMPLETED jobs changed: one statement.

    Run by one process at a time (the periodic task's advisory lock): deltas of
    transactions still open are not visible here and are left for the next fold. The
    deltas deleted and the jobs read share the statement's snapshot, so the recomputed
    percentiles cover exactly the completions folded so far (and no later ones).
    """
    row = (await session.execute(_FOLD)).one()
    return Folded(int(row[0]), int(row[1]))
