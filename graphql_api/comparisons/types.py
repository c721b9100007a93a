"""The comparison of a re-processing chain, as GraphQL types.

Lists of scalars carry the per-batch values (one entry per batch of the chain, in
order), so a whole comparison costs a few objects per metric under the cost rule,
however long the chain.
"""

from __future__ import annotations

import strawberry

from domain.jobs.rules import iso_duration
from domain.metrics import rules
from domain.metrics.rules import Finding, Series, Unit
from domain.metrics.service import ChainComparison
from graphql_api.batches.types import Batch
from graphql_api.relay import page_args

ComparisonMetric = strawberry.enum(
    rules.Metric,
    name="ComparisonMetric",
    description="A metric of a batch or of one of its nodes. Durations are over COMPLETED"
    " jobs: RUN (the implementation's own time) and JOB (completed − started).",
)
MetricUnit = strawberry.enum(
    Unit, name="MetricUnit", description="COUNT (jobs or recipes), RATIO (0 … 1), SECONDS."
)


def _iso(unit: Unit, values: tuple[float | None, ...]) -> list[str | None] | None:
    if unit is not Unit.SECONDS:
        return None
    return [iso_duration(v) for v in values]


@strawberry.type(
    description="One metric over the chain: one entry per batch, in chain order, in every"
    " list. The changes are from the previous batch of the chain (null for the first, and"
    " where either batch lacks a value)."
)
class MetricSeries:
    metric: ComparisonMetric  # type: ignore[valid-type]
    unit: MetricUnit  # type: ignore[valid-type]
    is_judged: bool = strawberry.field(
        description="Lower is better, and a change beyond the threshold is flagged (the"
        " failure rate, and the avg, p50 and p95 durations)."
    )
    values: list[float | None] = strawberry.field(
        description="Null where the batch lacks the node, or has no value yet (e.g. no"
        " COMPLETED job to time)."
    )
    iso: list[str | None] | None = strawberry.field(
        description="SECONDS metrics: the values as ISO-8601 durations (PT4M0S); else null."
    )
    changes: list[float | None] = strawberry.field(description="value − the previous value.")
    percent_changes: list[float | None] = strawberry.field(
        description="The change in % of the previous value (rounded to 0.01); null also"
        " when the previous value was 0 and this one is not."
    )
    is_regression: list[bool] = strawberry.field(
        description="Worse than the previous batch beyond the threshold."
    )
    is_improvement: list[bool] = strawberry.field(
        description="Better than the previous batch beyond the threshold."
    )

    @classmethod
    def of(cls, series: Series) -> MetricSeries:
        return cls(
            metric=series.metric,
            unit=series.unit,
            is_judged=series.metric in rules.JUDGED,
            values=list(series.values),
            iso=_iso(series.unit, series.values),
            changes=list(series.changes),
            percent_changes=list(series.percents),
            is_regression=list(series.regressions),
            is_improvement=list(series.improvements),
        )


@strawberry.type(description="One node name over the chain (a renamed node is two of these).")
class NodeComparison:
    node: str
    metrics: list[MetricSeries] = strawberry.field(
        description="Counts, FAILURE_RATE, RUN_DURATION_* and JOB_DURATION_*; all values"
        " null for the batches without this node."
    )


@strawberry.type(
    description="A flagged change: a judged metric of `batch` (or of one of its nodes)"
    " against the previous batch of the chain."
)
class ComparisonFinding:
    batch: Batch
    previous_batch: Batch
    node: str | None = strawberry.field(description="Null: the batch as a whole.")
    metric: ComparisonMetric  # type: ignore[valid-type]
    unit: MetricUnit  # type: ignore[valid-type]
    previous: float
    value: float
    change: float = strawberry.field(description="value − previous.")
    percent_change: float | None = strawberry.field(
        description="In % of previous; null when previous was 0."
    )
    previous_iso: str | None = strawberry.field(description="SECONDS metrics: ISO-8601.")
    value_iso: str | None = strawberry.field(description="SECONDS metrics: ISO-8601.")

    @classmethod
    def of(cls, finding: Finding, batches: list[Batch]) -> ComparisonFinding:
        seconds = rules.unit(finding.metric) is Unit.SECONDS
        return cls(
            batch=batches[finding.index],
            previous_batch=batches[finding.index - 1],
            node=finding.node,
            metric=finding.metric,
            unit=rules.unit(finding.metric),
            previous=finding.previous,
            value=finding.value,
            change=finding.change.absolute or 0.0,
            percent_change=finding.change.percent,
            previous_iso=iso_duration(finding.previous) if seconds else None,
            value_iso=iso_duration(finding.value) if seconds else None,
        )


@strawberry.type(
    description="A re-processing chain compared batch by batch (Scale's comparison: one"
    " list per metric with one value per batch), with the changes from each batch to the"
    " next and what regressed or improved beyond the threshold. Empty when the id names"
    " no chain root you may read."
)
class BatchComparison:
    threshold: float = strawberry.field(
        description="The fraction a judged metric had to move by to be flagged."
    )
    min_seconds: float = strawberry.field(
        description="A duration had to move by at least this much, too."
    )
    batches: list[Batch] = strawberry.field(description="The chain's batches, oldest first.")
    metrics: list[MetricSeries] = strawberry.field(
        description="The batches' own metrics: counts, recipes, FAILURE_RATE."
    )
    nodes: list[NodeComparison] = strawberry.field(
        description="Per node name, over the union of the chain's nodes (first seen first)."
    )
    regression_count: int
    improvement_count: int
    found: strawberry.Private[ChainComparison]

    @strawberry.field(
        description="What got worse, the most severe first (how many times"
        " worse; a metric that was 0 first), then by the size of the change."
    )
    def regressions(self, first: int = 20) -> list[ComparisonFinding]:
        return self._findings(self.found.comparison.regressions, first)

    @strawberry.field(description="What got better, the largest first.")
    def improvements(self, first: int = 20) -> list[ComparisonFinding]:
        return self._findings(self.found.comparison.improvements, first)

    def _findings(self, findings: tuple[Finding, ...], first: int) -> list[ComparisonFinding]:
        size = page_args(first, None, default=20, maximum=100).first
        return [ComparisonFinding.of(f, self.batches) for f in findings[:size]]

    @classmethod
    def of(cls, found: ChainComparison) -> BatchComparison:
        comparison = found.comparison
        return cls(
            threshold=comparison.options.threshold,
            min_seconds=comparison.options.min_seconds,
            batches=[Batch.from_model(b) for b in found.batches],
            metrics=[MetricSeries.of(s) for s in comparison.metrics],
            nodes=[
                NodeComparison(node=n.node, metrics=[MetricSeries.of(s) for s in n.metrics])
                for n in comparison.nodes
            ],
            regression_count=len(comparison.regressions),
            improvement_count=len(comparison.improvements),
            found=found,
        )
