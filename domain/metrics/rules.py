"""Batch metrics and the comparison of a re-processing chain: pure rules.

Per node (job name) of a batch: counts by status, the failure rate, and min / avg /
max / p50 / p95 of two durations over its COMPLETED jobs — the *run* duration (the
implementation's own time, as the worker measured it) and the *job* duration
(completed − started). Jobs without the timestamps are left out.

A comparison lines up the batches of a chain (oldest first) and, for every metric,
gives one value per batch — per node over the union of the chain's nodes, null where a
batch lacks the node (a renamed node is two rows) — and the change from the previous
batch. Lower is better for the failure rate and the durations; a change of one of the
*judged* metrics beyond the threshold is a regression (worse) or an improvement
(better). Min and max are not judged: one job decides them, so they flag noise.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from domain.errors import ValidationFailedError, Violation

MAX_THRESHOLD = 10.0  # 1,000 %: past that a threshold flags nothing a person would miss
MAX_MIN_SECONDS = 86_400.0
# A failure rate must move by at least one percentage point to be judged at all: on a
# handful of jobs one failure more or less is not a trend.
MIN_RATE_CHANGE = 0.01


class Unit(StrEnum):
    COUNT = "COUNT"
    RATIO = "RATIO"  # 0 … 1
    SECONDS = "SECONDS"


class Metric(StrEnum):
    JOBS_TOTAL = "JOBS_TOTAL"
    PENDING = "PENDING"
    BLOCKED = "BLOCKED"
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"
    RECIPES_ESTIMATED = "RECIPES_ESTIMATED"
    RECIPES_TOTAL = "RECIPES_TOTAL"
    RECIPES_COMPLETED = "RECIPES_COMPLETED"
    FAILURE_RATE = "FAILURE_RATE"
    RUN_DURATION_MIN = "RUN_DURATION_MIN"
    RUN_DURATION_AVG = "RUN_DURATION_AVG"
    RUN_DURATION_MAX = "RUN_DURATION_MAX"
    RUN_DURATION_P50 = "RUN_DURATION_P50"
    RUN_DURATION_P95 = "RUN_DURATION_P95"
    JOB_DURATION_MIN = "JOB_DURATION_MIN"
    JOB_DURATION_AVG = "JOB_DURATION_AVG"
    JOB_DURATION_MAX = "JOB_DURATION_MAX"
    JOB_DURATION_P50 = "JOB_DURATION_P50"
    JOB_DURATION_P95 = "JOB_DURATION_P95"


M = Metric
COUNTS = (
    M.JOBS_TOTAL,
    M.PENDING,
    M.BLOCKED,
    M.QUEUED,
    M.RUNNING,
    M.COMPLETED,
    M.FAILED,
    M.CANCELED,
)
RUN_DURATIONS = (
    M.RUN_DURATION_MIN,
    M.RUN_DURATION_AVG,
    M.RUN_DURATION_MAX,
    M.RUN_DURATION_P50,
    M.RUN_DURATION_P95,
)
JOB_DURATIONS = (
    M.JOB_DURATION_MIN,
    M.JOB_DURATION_AVG,
    M.JOB_DURATION_MAX,
    M.JOB_DURATION_P50,
    M.JOB_DURATION_P95,
)
BATCH_METRICS = (
    *COUNTS,
    M.RECIPES_ESTIMATED,
    M.RECIPES_TOTAL,
    M.RECIPES_COMPLETED,
    M.FAILURE_RATE,
)
NODE_METRICS = (*COUNTS, M.FAILURE_RATE, *RUN_DURATIONS, *JOB_DURATIONS)
# Lower is better for these; a change beyond the threshold is flagged.
JUDGED = frozenset(
    {
        M.FAILURE_RATE,
        M.RUN_DURATION_AVG,
        M.RUN_DURATION_P50,
        M.RUN_DURATION_P95,
        M.JOB_DURATION_AVG,
        M.JOB_DURATION_P50,
        M.JOB_DURATION_P95,
    }
)
ORDER = {m: i for i, m in enumerate(Metric)}


def unit(metric: Metric) -> Unit:
    if metric is M.FAILURE_RATE:
        return Unit.RATIO
    if metric in RUN_DURATIONS or metric in JOB_DURATIONS:
        return Unit.SECONDS
    return Unit.COUNT


# --- one batch's metrics -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DurationStats:
    """Over a node's COMPLETED jobs that have the duration; p50/p95 as of the last
    background refresh (``NodeStats.percentiles_completed`` jobs)."""

    count: int
    min: float | None
    avg: float | None
    max: float | None
    p50: float | None
    p95: float | None


def duration_stats(
    low: float | None,
    total: float,
    count: int,
    high: float | None,
    p50: float | None,
    p95: float | None,
) -> DurationStats:
    """A node with no timed job has no durations at all (never a stale one)."""
    if count <= 0:
        return DurationStats(0, None, None, None, None, None)
    return DurationStats(count, low, total / count, high, p50, p95)


def failure_rate(completed: int, failed: int) -> float | None:
    """FAILED among the jobs that ran to an end (COMPLETED or FAILED); canceled jobs
    did not fail. None before any did."""
    finished = completed + failed
    return failed / finished if finished else None


@dataclass(frozen=True, slots=True)
class NodeStats:
    node: str
    pending: int
    blocked: int
    queued: int
    running: int
    completed: int
    failed: int
    canceled: int
    run: DurationStats
    job: DurationStats

    @property
    def jobs_total(self) -> int:
        return (
            self.pending
            + self.blocked
            + self.queued
            + self.running
            + self.completed
            + self.failed
            + self.canceled
        )

    @property
    def failure_rate(self) -> float | None:
        return failure_rate(self.completed, self.failed)

    def counts(self) -> tuple[int, ...]:
        """In the order of COUNTS."""
        return (
            self.jobs_total,
            self.pending,
            self.blocked,
            self.queued,
            self.running,
            self.completed,
            self.failed,
            self.canceled,
        )

    def values(self) -> dict[Metric, float | None]:
        run, job = self.run, self.job
        return {
            M.JOBS_TOTAL: self.jobs_total,
            M.PENDING: self.pending,
            M.BLOCKED: self.blocked,
            M.QUEUED: self.queued,
            M.RUNNING: self.running,
            M.COMPLETED: self.completed,
            M.FAILED: self.failed,
            M.CANCELED: self.canceled,
            M.FAILURE_RATE: self.failure_rate,
            M.RUN_DURATION_MIN: run.min,
            M.RUN_DURATION_AVG: run.avg,
            M.RUN_DURATION_MAX: run.max,
            M.RUN_DURATION_P50: run.p50,
            M.RUN_DURATION_P95: run.p95,
            M.JOB_DURATION_MIN: job.min,
            M.JOB_DURATION_AVG: job.avg,
            M.JOB_DURATION_MAX: job.max,
            M.JOB_DURATION_P50: job.p50,
            M.JOB_DURATION_P95: job.p95,
        }


def batch_values(
    nodes: Iterable[NodeStats],
    *,
    recipes_estimated: int,
    recipes_total: int,
    recipes_completed: int,
) -> dict[Metric, float | None]:
    """A batch's own metrics: its nodes' counts summed, its recipes, its failure rate."""
    sums: dict[Metric, int] = dict.fromkeys(COUNTS, 0)
    for node in nodes:
        for metric, value in zip(COUNTS, node.counts(), strict=True):
            sums[metric] += value
    return {
        **sums,
        M.RECIPES_ESTIMATED: recipes_estimated,
        M.RECIPES_TOTAL: recipes_total,
        M.RECIPES_COMPLETED: recipes_completed,
        M.FAILURE_RATE: failure_rate(sums[M.COMPLETED], sums[M.FAILED]),
    }


# --- the comparison of a chain -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class Options:
    threshold: float  # a fraction: 0.2 flags a judged metric 20 % worse (or better)
    min_seconds: float  # a duration must also move by this much to be flagged


def check_options(threshold: float, min_seconds: float) -> Options:
    """The comparison's options, or VALIDATION_FAILED naming each bad one."""
    problems = []
    if not (math.isfinite(threshold) and 0 <= threshold <= MAX_THRESHOLD):
        problems.append(
            Violation(
                "$.threshold",
                f"threshold must be a fraction from 0 to {MAX_THRESHOLD:g}"
                f" ({MAX_THRESHOLD:.0%}); 0.2 flags a change of more than 20 %",
            )
        )
    if not (math.isfinite(min_seconds) and 0 <= min_seconds <= MAX_MIN_SECONDS):
        problems.append(
            Violation("$.minSeconds", f"minSeconds must be from 0 to {MAX_MIN_SECONDS:,.0f}")
        )
    if problems:
        raise ValidationFailedError(
            "; ".join(p.message for p in problems) + f" (got threshold={threshold!r},"
            f" minSeconds={min_seconds!r})",
            problems,
        )
    return Options(threshold, min_seconds)


@dataclass(frozen=True, slots=True)
class Change:
    absolute: float | None  # value − previous; None where either is missing
    percent: float | None  # of the previous value, rounded to 0.01; None when it was 0
    is_regression: bool = False
    is_improvement: bool = False


NO_CHANGE = Change(None, None)


def judge(metric: Metric, previous: float | None, value: float | None, options: Options) -> Change:
    """The change of one metric from the previous batch, flagged when a judged metric
    moved beyond the threshold (relative to the previous value) and the floor
    (``min_seconds`` for durations, one percentage point for the failure rate). A
    judged metric that was 0 and is no longer has regressed whatever the threshold."""
    if previous is None or value is None:
        return NO_CHANGE
    change = value - previous
    if previous:
        percent: float | None = round(change / previous * 100, 2)
    else:
        percent = 0.0 if not change else None
    if metric not in JUDGED or not change:
        return Change(change, percent)
    floor = options.min_seconds if unit(metric) is Unit.SECONDS else MIN_RATE_CHANGE
    if abs(change) < floor:
        return Change(change, percent)
    if change > 0:
        worse = previous == 0 or change / previous > options.threshold
        return Change(change, percent, is_regression=worse)
    better = -change / previous > options.threshold  # previous > value >= 0
    return Change(change, percent, is_improvement=better)


@dataclass(frozen=True, slots=True)
class Series:
    """One metric over the chain: per batch, its value and its change from the previous
    batch (none for the first), as parallel tuples (a long chain holds tens of
    thousands of them: no object per cell)."""

    metric: Metric
    values: tuple[float | None, ...]
    changes: tuple[float | None, ...]
    percents: tuple[float | None, ...]
    regressions: tuple[bool, ...]
    improvements: tuple[bool, ...]

    @property
    def unit(self) -> Unit:
        return unit(self.metric)

    def change(self, i: int) -> Change:
        return Change(self.changes[i], self.percents[i], self.regressions[i], self.improvements[i])


@dataclass(frozen=True, slots=True)
class NodeSeries:
    node: str
    metrics: tuple[Series, ...]


@dataclass(frozen=True, slots=True)
class Finding:
    """A flagged change: batch ``index`` (in chain order) against the one before it."""

    index: int
    node: str | None  # None: the batch as a whole
    metric: Metric
    previous: float
    value: float
    change: Change

    @property
    def ratio(self) -> float:
        """How many times worse (a regression) or better (an improvement)."""
        worse, better = (
            (self.value, self.previous)
            if self.change.is_regression
            else (self.previous, self.value)
        )
        return worse / better if better else math.inf

    def severity(self) -> tuple[float, float, int, str, int]:
        """Sort key, most severe first: the ratio, then the size of the change."""
        return (
            -self.ratio,
            -abs(self.change.absolute or 0.0),
            self.index,
            self.node or "",
            ORDER[self.metric],
        )


@dataclass(frozen=True, slots=True)
class Column:
    """One batch of the chain: its own metrics and its nodes' (in recipe order)."""

    values: Mapping[Metric, float | None]
    nodes: Mapping[str, Mapping[Metric, float | None]]


@dataclass(frozen=True, slots=True)
class Comparison:
    options: Options
    metrics: tuple[Series, ...] = ()
    nodes: tuple[NodeSeries, ...] = ()
    regressions: tuple[Finding, ...] = ()
    improvements: tuple[Finding, ...] = ()


def _series(metric: Metric, values: Sequence[float | None], options: Options) -> Series:
    changes = [NO_CHANGE] + [
        judge(metric, values[i - 1], values[i], options) for i in range(1, len(values))
    ]
    return Series(
        metric,
        tuple(values),
        tuple(c.absolute for c in changes),
        tuple(c.percent for c in changes),
        tuple(c.is_regression for c in changes),
        tuple(c.is_improvement for c in changes),
    )


def compare(columns: Sequence[Column], options: Options) -> Comparison:
    """The chain's comparison: batch-level series, node series over the union of the
    nodes (first appearance, in chain then recipe order), and the flagged changes with
    the most severe first."""
    findings: list[Finding] = []

    def keep(node: str | None, series: Series) -> None:
        for i in range(1, len(series.values)):
            if series.regressions[i] or series.improvements[i]:
                previous, value = series.values[i - 1], series.values[i]
                assert previous is not None
                assert value is not None
                findings.append(Finding(i, node, series.metric, previous, value, series.change(i)))

    batch_series = []
    for metric in BATCH_METRICS:
        series = _series(metric, [c.values.get(metric) for c in columns], options)
        keep(None, series)
        batch_series.append(series)
    names = list(dict.fromkeys(name for c in columns for name in c.nodes))
    node_series = []
    for name in names:
        per_metric = []
        for metric in NODE_METRICS:
            values = [c.nodes[name].get(metric) if name in c.nodes else None for c in columns]
            series = _series(metric, values, options)
            keep(name, series)
            per_metric.append(series)
        node_series.append(NodeSeries(name, tuple(per_metric)))
    ordered = sorted(findings, key=Finding.severity)
    return Comparison(
        options=options,
        metrics=tuple(batch_series),
        nodes=tuple(node_series),
        regressions=tuple(f for f in ordered if f.change.is_regression),
        improvements=tuple(f for f in ordered if f.change.is_improvement),
    )
