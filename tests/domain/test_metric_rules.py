"""The comparison rules, pure: changes, flags, severity, the union of nodes, options."""

from __future__ import annotations

import math

import pytest

from domain.errors import ValidationFailedError
from domain.jobs.rules import iso_duration
from domain.metrics import rules
from domain.metrics.rules import Column, Metric, Options

M = Metric
OPTIONS = Options(threshold=0.2, min_seconds=0.05)


def column(nodes: dict[str, dict[Metric, float | None]], **values: float | None) -> Column:
    return Column(values={M(k): v for k, v in values.items()}, nodes=nodes)


def test_durations_render_as_spec_section_3() -> None:
    assert iso_duration(0) == "PT0S"
    assert iso_duration(0.0) == "PT0S"
    assert iso_duration(120) == "PT2M0S"
    assert iso_duration(240) == "PT4M0S"
    assert iso_duration(90_000) == "P1DT1H0S"
    assert iso_duration(1.5) == "PT1.5S"


def test_the_worked_example_two_three_seven_minutes_and_an_untimed_job() -> None:
    # The untimed job is not in the aggregates at all (count 3, not 4).
    stats = rules.duration_stats(120.0, 120.0 + 180.0 + 420.0, 3, 420.0, 180.0, 396.0)
    assert (iso_duration(stats.min), iso_duration(stats.avg), iso_duration(stats.max)) == (
        "PT2M0S",
        "PT4M0S",
        "PT7M0S",
    )
    assert stats.count == 3


def test_a_node_without_timed_jobs_has_no_durations_not_stale_ones() -> None:
    assert rules.duration_stats(5.0, 0.0, 0, 9.0, 7.0, 8.0) == rules.DurationStats(
        0, None, None, None, None, None
    )


def test_failure_rate_counts_jobs_that_ended_and_not_canceled_ones() -> None:
    assert rules.failure_rate(0, 0) is None
    assert rules.failure_rate(3, 1) == 0.25
    assert rules.failure_rate(0, 2) == 1.0


@pytest.mark.parametrize(
    ("metric", "previous", "value", "regression", "improvement", "percent"),
    [
        (M.RUN_DURATION_P50, 1.0, 1.3, True, False, 30.0),  # 30 % worse > 20 %
        (M.RUN_DURATION_P50, 1.0, 1.1, False, False, 10.0),  # within the threshold
        (M.RUN_DURATION_P50, 1.0, 0.5, False, True, -50.0),
        (M.RUN_DURATION_P50, 0.01, 0.03, False, False, 200.0),  # 20 ms: under the floor
        (M.RUN_DURATION_MAX, 1.0, 9.0, False, False, 800.0),  # max is not judged
        (M.FAILED, 1, 10, False, False, 900.0),  # counts are not judged
        (M.FAILURE_RATE, 0.0, 0.15, True, False, None),  # from none: a regression
        (M.FAILURE_RATE, 0.0, 0.005, False, False, None),  # under one point
        (M.FAILURE_RATE, 0.15, 0.0, False, True, -100.0),
        (M.RUN_DURATION_AVG, 0.0, 0.0, False, False, 0.0),
    ],
)
def test_judge(
    metric: Metric,
    previous: float,
    value: float,
    regression: bool,
    improvement: bool,
    percent: float | None,
) -> None:
    change = rules.judge(metric, previous, value, OPTIONS)
    assert change.is_regression is regression
    assert change.is_improvement is improvement
    assert change.percent == percent
    assert change.absolute == pytest.approx(value - previous)


def test_a_missing_side_has_no_change() -> None:
    assert rules.judge(M.RUN_DURATION_P50, None, 1.0, OPTIONS) == rules.NO_CHANGE
    assert rules.judge(M.RUN_DURATION_P50, 1.0, None, OPTIONS) == rules.NO_CHANGE


def test_a_renamed_node_is_two_rows_with_nulls_where_a_batch_lacks_it() -> None:
    """Scale's worked example: job names over the chain; a node renamed between the
    batches (thumb → thumbnail) appears twice, null where a batch lacks it."""
    first = column(
        {"resize": {M.COMPLETED: 10}, "thumb": {M.COMPLETED: 10}}, JOBS_TOTAL=20, COMPLETED=20
    )
    second = column(
        {"resize": {M.COMPLETED: 9}, "thumbnail": {M.COMPLETED: 9}}, JOBS_TOTAL=20, COMPLETED=18
    )
    found = rules.compare([first, second], OPTIONS)
    assert [n.node for n in found.nodes] == ["resize", "thumb", "thumbnail"]
    completed = {n.node: next(s for s in n.metrics if s.metric is M.COMPLETED) for n in found.nodes}
    assert completed["resize"].values == (10, 9)
    assert completed["thumb"].values == (10, None)
    assert completed["thumbnail"].values == (None, 9)
    assert completed["resize"].changes == (None, -1)
    assert completed["thumb"].changes == (None, None)
    assert [s.metric for s in found.metrics] == list(rules.BATCH_METRICS)
    assert [s.metric for s in found.nodes[0].metrics] == list(rules.NODE_METRICS)


def test_a_chain_of_one_batch_has_null_changes_and_no_findings() -> None:
    found = rules.compare(
        [column({"n": {M.RUN_DURATION_P50: 1.0}}, JOBS_TOTAL=1, FAILURE_RATE=0.0)], OPTIONS
    )
    for series in [*found.metrics, *found.nodes[0].metrics]:
        assert series.change(0) == rules.NO_CHANGE
    assert found.regressions == found.improvements == ()


def test_an_empty_chain_is_an_empty_comparison() -> None:
    found = rules.compare([], OPTIONS)
    assert found.nodes == ()
    assert all(s.values == () for s in found.metrics)


def test_findings_are_sorted_by_severity() -> None:
    a = {M.RUN_DURATION_P50: 1.0, M.JOB_DURATION_P95: 2.0, M.FAILURE_RATE: 0.0}
    b = {M.RUN_DURATION_P50: 1.5, M.JOB_DURATION_P95: 8.0, M.FAILURE_RATE: 0.1}
    c = {M.RUN_DURATION_P50: 4.5, M.JOB_DURATION_P95: 8.0, M.FAILURE_RATE: 0.1}
    found = rules.compare(
        [column({"x": a}), column({"x": b}), column({"x": c})],
        OPTIONS,
    )
    summary = [(f.index, f.metric, f.ratio) for f in found.regressions]
    assert summary == [
        (1, M.FAILURE_RATE, math.inf),  # from zero: first
        (1, M.JOB_DURATION_P95, 4.0),
        (2, M.RUN_DURATION_P50, 3.0),
        (1, M.RUN_DURATION_P50, 1.5),
    ]
    assert found.improvements == ()


def test_improvements_are_sorted_largest_first() -> None:
    a = {M.RUN_DURATION_P50: 4.0, M.RUN_DURATION_P95: 4.0}
    b = {M.RUN_DURATION_P50: 1.0, M.RUN_DURATION_P95: 2.0}
    found = rules.compare([column({"x": a}), column({"x": b})], OPTIONS)
    assert [(f.metric, f.ratio) for f in found.improvements] == [
        (M.RUN_DURATION_P50, 4.0),
        (M.RUN_DURATION_P95, 2.0),
    ]


@pytest.mark.parametrize(
    ("threshold", "min_seconds", "paths"),
    [
        (-0.1, 0.05, ["$.threshold"]),
        (1e9, 0.05, ["$.threshold"]),
        (math.nan, 0.05, ["$.threshold"]),
        (0.2, -1.0, ["$.minSeconds"]),
        (-1.0, 1e12, ["$.threshold", "$.minSeconds"]),
    ],
)
def test_bad_options_are_refused_with_a_code(
    threshold: float, min_seconds: float, paths: list[str]
) -> None:
    with pytest.raises(ValidationFailedError) as refused:
        rules.check_options(threshold, min_seconds)
    assert refused.value.code == "VALIDATION_FAILED"
    assert [v.path for v in refused.value.violations] == paths


def test_edge_options_are_accepted() -> None:
    assert rules.check_options(0, 0) == Options(0, 0)
    assert rules.check_options(10, 86_400) == Options(10, 86_400)
