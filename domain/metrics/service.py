"""Batch metrics and chain comparisons: reads, decided by domain/metrics/rules.py."""

from __future__ import annotations

from dataclasses import dataclass, field

from db.models import Batch
from db.repositories.comparison import ComparisonRepository
from db.repositories.counters import NodeCounts
from domain.auth.rules import Actor, sees_private_workspaces
from domain.metrics import rules
from domain.metrics.rules import Column, Comparison, NodeStats, Options


def node_stats(row: NodeCounts) -> NodeStats:
    return NodeStats(
        node=row.node,
        pending=row.pending,
        blocked=row.blocked,
        queued=row.queued,
        running=row.running,
        completed=row.completed,
        failed=row.failed,
        canceled=row.canceled,
        run=rules.duration_stats(
            row.run_seconds_min,
            row.run_seconds_sum,
            row.run_seconds_count,
            row.run_seconds_max,
            row.run_seconds_p50,
            row.run_seconds_p95,
        ),
        job=rules.duration_stats(
            row.job_seconds_min,
            row.job_seconds_sum,
            row.job_seconds_count,
            row.job_seconds_max,
            row.job_seconds_p50,
            row.job_seconds_p95,
        ),
    )


@dataclass(frozen=True, slots=True)
class ChainComparison:
    batches: list[Batch]  # oldest first
    comparison: Comparison
    latest_id: int | None = None  # the chain's newest batch: the comparison changes with it
    batch_ids: frozenset[int] = field(default_factory=frozenset)


async def compare_chain(
    reads: ComparisonRepository,
    *,
    root_batch_id: int,
    actor: Actor | None,
    threshold: float,
    min_seconds: float,
) -> ChainComparison:
    """The comparison of the chain whose root is ``root_batch_id``, in two statements.

    Like Scale, the id must be the chain's *root*: any other id (a later batch of a
    chain, an unknown id, an id of another type) names no chain and gets an empty
    comparison — as does a chain in a workspace the actor may not read, so an empty
    answer never tells whether a hidden chain exists. Bad options are refused before
    anything is read."""
    options: Options = rules.check_options(threshold, min_seconds)
    chain = await reads.chain(root_batch_id)
    if not chain or not (chain[0].is_public or sees_private_workspaces(actor)):
        return ChainComparison(batches=[], comparison=Comparison(options=options))
    batches = [c.batch for c in chain]
    node_rows = await reads.nodes([b.id for b in batches])
    columns = []
    for found, rows in zip(chain, node_rows, strict=True):
        stats = [node_stats(r) for r in rows]
        columns.append(
            Column(
                values=rules.batch_values(
                    stats,
                    recipes_estimated=found.batch.recipes_estimated,
                    recipes_total=found.batch.recipes_total,
                    recipes_completed=found.recipes_completed,
                ),
                nodes={s.node: s.values() for s in stats},
            )
        )
    return ChainComparison(
        batches=batches,
        comparison=rules.compare(columns, options),
        latest_id=batches[-1].id,
        batch_ids=frozenset(b.id for b in batches),
    )
