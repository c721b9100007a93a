"""Pure task type rules: schema checks, parameter validation, the check-in clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from domain.tasktypes import rules
from tests.factories import revision_fields

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("gap", "timed_out"),
    [
        (timedelta(seconds=29), False),
        (timedelta(seconds=30), False),
        (timedelta(seconds=30, microseconds=1), True),
    ],
)
def test_has_timed_out_is_strict(gap: timedelta, timed_out: bool) -> None:
    assert (
        rules.has_timed_out(
            last_check_in=NOW - gap, created_at=NOW - timedelta(days=1), timeout_seconds=30, now=NOW
        )
        is timed_out
    )


def test_never_checked_in_counts_from_creation() -> None:
    assert rules.has_timed_out(
        last_check_in=None, created_at=NOW - timedelta(seconds=31), timeout_seconds=30, now=NOW
    )
    assert not rules.has_timed_out(
        last_check_in=None, created_at=NOW - timedelta(seconds=5), timeout_seconds=30, now=NOW
    )


def test_parameter_violations_each_have_a_json_path() -> None:
    schema = {
        "type": "object",
        "required": ["items"],
        "properties": {
            "items": {
                "type": "array",
                "items": {"type": "object", "properties": {"size": {"type": "integer"}}},
            },
            "odd key": {"type": "string"},
        },
        "additionalProperties": False,
    }
    violations = rules.validate_parameters(
        schema, {"items": [{"size": 1}, {"size": "big"}], "odd key": 3, "extra": True}
    )
    assert sorted(v.path for v in violations) == ["$", "$.items[1].size", "$['odd key']"]


def test_parameters_must_be_an_object_whatever_the_schema() -> None:
    assert rules.validate_parameters({}, [1, 2]) == [
        rules.Violation("$", "parameters must be a JSON object")
    ]


def test_formats_are_checked() -> None:
    schema = {"type": "object", "properties": {"at": {"type": "string", "format": "date-time"}}}
    assert rules.validate_parameters(schema, {"at": "2026-01-01T00:00:00Z"}) == []
    assert [v.path for v in rules.validate_parameters(schema, {"at": "yesterday"})] == ["$.at"]


def test_local_refs_resolve_and_remote_refs_are_refused() -> None:
    local = {
        "$defs": {"n": {"type": "integer"}},
        "type": "object",
        "properties": {"a": {"$ref": "#/$defs/n"}},
    }
    assert rules.check_json_schema(local, "$.s") == []
    assert [v.path for v in rules.validate_parameters(local, {"a": "x"})] == ["$.a"]
    remote = {"properties": {"a": {"$ref": "http://example.invalid/x.json"}}}
    assert [v.path for v in rules.check_json_schema(remote, "$.s")] == ["$.s.properties.a['$ref']"]


def test_revision_fields_report_every_problem() -> None:
    fields = revision_fields(
        implementation="Bad Name", timeout_seconds=-1, max_attempts=0, description="x" * 10_001
    )
    assert sorted(v.path for v in rules.check_revision_fields(fields)) == [
        "$.description",
        "$.implementation",
        "$.maxAttempts",
        "$.timeoutSeconds",
    ]


@pytest.mark.parametrize("name", ["builtin.echo", "external", "acme.tasks.resize"])
def test_good_implementation_names(name: str) -> None:
    assert rules.check_revision_fields(revision_fields(implementation=name)) == []


@pytest.mark.parametrize(
    ("name", "ok"),
    [("resize", True), ("Resize.v2_b-c", True), ("2fast", False), ("", False), ("a b", False)],
)
def test_names(name: str, ok: bool) -> None:
    assert (rules.check_name(name) == []) is ok
