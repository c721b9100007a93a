"""Client-supplied JSON Schemas: every regex runs on RE2 (linear time), whatever the draft.

Each case below would take Python's backtracking ``re`` about 2**30 steps (minutes);
the deadline only guards against a hang, it is not a performance target.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

import pytest

from domain import jsonschemas
from domain.jobs.execution import check_result
from domain.tasktypes import rules

CATASTROPHIC = "^(a+)+$"
# Hours for Python's backtracking (it doubles per character), microseconds for RE2: the
# deadlines below only turn a hang into a failure, they are no speed target.
ATTACK = "a" * 40 + "!"
D4 = "http://json-schema.org/draft-04/schema#"
D7 = "http://json-schema.org/draft-07/schema#"
D2019 = "https://json-schema.org/draft/2019-09/schema"


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Fail instead of hanging (``re`` checks for signals while it backtracks)."""

    def expire(signum: int, frame: FrameType | None) -> None:
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _with(draft: str | None, schema: dict[str, Any]) -> dict[str, Any]:
    return schema if draft is None else {"$schema": draft, **schema}


@pytest.mark.parametrize("draft", [None, D2019, D7, D4])
@pytest.mark.parametrize(
    ("schema", "document", "paths"),
    [
        ({"properties": {"s": {"pattern": CATASTROPHIC}}}, {"s": ATTACK}, ["$.s"]),
        ({"properties": {"s": {"pattern": CATASTROPHIC}}}, {"s": "aaaa"}, []),
        ({"patternProperties": {CATASTROPHIC: {"type": "integer"}}}, {ATTACK: "x"}, []),
        ({"patternProperties": {CATASTROPHIC: {"type": "integer"}}}, {"aaa": "x"}, ["$.aaa"]),
        (
            {"patternProperties": {CATASTROPHIC: {}}, "additionalProperties": False},
            {ATTACK: 1},
            ["$"],
        ),
        (
            {"propertyNames": {"pattern": CATASTROPHIC}},
            {ATTACK: 1},
            ["$"],
        ),
    ],
)
def test_catastrophic_patterns_are_answered_at_once(
    draft: str | None, schema: dict[str, Any], document: Any, paths: list[str]
) -> None:
    if draft == D4 and "propertyNames" in schema:
        paths = []  # draft 4 has no propertyNames: ignored (and answered at once too)
    with deadline(60):
        found = jsonschemas.validate(_with(draft, schema), document)
    assert [v.path for v in found] == paths


@pytest.mark.parametrize("draft", [None, D2019])
def test_unevaluated_properties_consult_pattern_properties_through_re2(draft: str | None) -> None:
    schema = _with(draft, {"patternProperties": {CATASTROPHIC: {}}, "unevaluatedProperties": False})
    with deadline(60):
        assert [v.path for v in jsonschemas.validate(schema, {ATTACK: 1})] == ["$"]
        assert jsonschemas.validate(schema, {"aaa": 1}) == []


def test_the_regex_format_is_checked_by_re2() -> None:
    schema = {"properties": {"r": {"type": "string", "format": "regex"}}}
    assert jsonschemas.validate(schema, {"r": "^(a+)+$"}) == []  # valid RE2, never run
    [violation] = jsonschemas.validate(schema, {"r": "(?=a)b"})
    assert violation.path == "$.r"
    assert "RE2" in violation.message


def test_parameters_and_results_go_through_the_same_rules() -> None:
    schema = {"properties": {"s": {"pattern": CATASTROPHIC}}}
    with deadline(60):
        assert [v.path for v in rules.validate_parameters(schema, {"s": ATTACK})] == ["$.s"]
        assert [v.path for v in check_result(schema, {"s": ATTACK})] == ["$.s"]


@pytest.mark.parametrize("draft", [None, D2019, D7])
@pytest.mark.parametrize(
    ("schema", "path"),
    [
        ({"properties": {"s": {"pattern": r"(a)\1"}}}, "$.p.properties.s.pattern"),
        ({"items": {"pattern": "(?<=a)b"}}, "$.p.items.pattern"),
        ({"patternProperties": {"^x(?!y)": {}}}, "$.p.patternProperties['^x(?!y)']"),
    ],
)
def test_schemas_with_patterns_re2_cannot_run_are_refused_with_a_path(
    draft: str | None, schema: dict[str, Any], path: str
) -> None:
    [violation] = rules.check_json_schema(_with(draft, schema), "$.p")
    assert violation.path == path
    assert violation.message.startswith("patterns must be RE2 syntax")


def test_re2_syntax_that_python_also_reads_is_accepted() -> None:
    schema = {
        "properties": {"s": {"pattern": r"^[a-z]{2,8}(-\d+)?$"}},
        "patternProperties": {r"^x-(?P<n>\w+)$": {"type": "string"}},
    }
    assert rules.check_json_schema(schema, "$.p") == []
    assert rules.validate_parameters(schema, {"s": "abc-12", "x-a": "v"}) == []
    assert [v.path for v in rules.validate_parameters(schema, {"s": "ABC", "x-a": 1})] == [
        "$.s",
        "$['x-a']",
    ]


def test_a_stored_schema_with_an_unsupported_pattern_reports_instead_of_raising() -> None:
    """Schemas stored before RE2 was the rule are never run on Python's ``re``."""
    schema = {"properties": {"s": {"pattern": "(?=a)a"}}}
    [violation] = rules.validate_parameters(schema, {"s": "a"})
    assert violation.path == "$"
    assert "RE2" in violation.message


@pytest.mark.parametrize(
    ("text", "valid"),
    [("http://例え.jp/パス?q=ü", True), ("http://" + "a" * 8000, True), ("http://ex ample", False)],
)
def test_iris_are_checked_through_their_uri_mapping(text: str, valid: bool) -> None:
    """jsonschema's own IRI parser took 12 s for 16 KB; the URI mapping is linear."""
    with deadline(60):
        found = jsonschemas.validate({"format": "iri"}, text)
    assert (found == []) is valid


def test_formats_are_not_checked_on_strings_longer_than_the_bound() -> None:
    schema = {"properties": {"t": {"format": "uri-template"}}}
    assert jsonschemas.validate(schema, {"t": "x" * jsonschemas.MAX_FORMAT_CHARS}) == []
    [violation] = jsonschemas.validate(schema, {"t": "x" * (jsonschemas.MAX_FORMAT_CHARS + 1)})
    assert violation.path == "$.t"
    assert f"longer than {jsonschemas.MAX_FORMAT_CHARS} characters" in violation.message
