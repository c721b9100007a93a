"""Task type rules (TopChef "services"): names, schemas, revisions, the check-in clock."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from db.enums import CachePolicy
from domain import jsonpath, jsonschemas
from domain.errors import Violation
from domain.text import check_text

NAME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,99}$")
# ``external`` (pull workers) or a dotted implementation name such as ``builtin.echo``.
IMPLEMENTATION_PATTERN = re.compile(r"^(external|[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)+)$")
MAX_SCHEMA_BYTES = 64 * 1024
MAX_DESCRIPTION_LENGTH = 10_000
MAX_TIMEOUT_SECONDS = 7 * 24 * 3600
MAX_ATTEMPTS = 100
MAX_CHECK_IN_TIMEOUT_SECONDS = 7 * 24 * 3600
MAX_VIOLATIONS = jsonschemas.MAX_VIOLATIONS
MAX_REQUIREMENTS_BYTES = 4 * 1024
DEFAULT_SCHEMA: dict[str, Any] = {"type": "object"}

JSON = Any


@dataclass(frozen=True, slots=True)
class RevisionFields:
    """What a revision pins. Changing any of it makes a new revision."""

    description: str
    parameters_schema: JSON
    result_schema: JSON
    implementation: str
    timeout_seconds: int | None
    max_attempts: int
    cache_policy: CachePolicy
    # Every key/value must appear in a worker's metadata for it to run these jobs.
    requirements: JSON = field(default_factory=dict)


def check_name(name: str) -> list[Violation]:
    if NAME_PATTERN.match(name):
        return []
    return [
        Violation(
            "$.name",
            "must start with a letter and be at most 100 letters, digits, '_', '.' or '-'",
        )
    ]


def check_check_in_timeout(seconds: int, path: str = "$.checkInTimeoutSeconds") -> list[Violation]:
    if 0 < seconds <= MAX_CHECK_IN_TIMEOUT_SECONDS:
        return []
    return [Violation(path, f"must be greater than 0 and at most {MAX_CHECK_IN_TIMEOUT_SECONDS}")]


_NOT_NULL = {
    "description": "$.description",
    "implementation": "$.implementation",
    "max_attempts": "$.maxAttempts",
    "cache_policy": "$.cachePolicy",
}


def check_revision_fields(fields: RevisionFields) -> list[Violation]:
    nulls = [
        Violation(path, "must not be null")
        for name, path in _NOT_NULL.items()
        if getattr(fields, name) is None
    ]
    if nulls:
        return nulls
    violations: list[Violation] = []
    violations += check_text(
        fields.description, "$.description", max_length=MAX_DESCRIPTION_LENGTH, multiline=True
    )
    violations += check_json_schema(fields.parameters_schema, "$.parametersSchema")
    violations += check_json_schema(fields.result_schema, "$.resultSchema")
    if not IMPLEMENTATION_PATTERN.match(fields.implementation):
        violations.append(
            Violation(
                "$.implementation",
                "must be 'external' or a dotted implementation name such as 'builtin.echo'",
            )
        )
    if fields.timeout_seconds is not None and not (
        0 < fields.timeout_seconds <= MAX_TIMEOUT_SECONDS
    ):
        violations.append(
            Violation("$.timeoutSeconds", f"must be between 1 and {MAX_TIMEOUT_SECONDS}")
        )
    if not 1 <= fields.max_attempts <= MAX_ATTEMPTS:
        violations.append(Violation("$.maxAttempts", f"must be between 1 and {MAX_ATTEMPTS}"))
    violations += check_requirements(fields.requirements)
    return violations


def check_requirements(requirements: JSON, path: str = "$.requirements") -> list[Violation]:
    """Requirements are matched by containment against worker metadata: a JSON object."""
    if requirements is None:
        return [Violation(path, "must not be null")]
    if not isinstance(requirements, dict):
        return [Violation(path, 'must be a JSON object, e.g. {"arch": "aarch64"}')]
    if len(json.dumps(requirements)) > MAX_REQUIREMENTS_BYTES:
        return [Violation(path, f"must be at most {MAX_REQUIREMENTS_BYTES} bytes of JSON")]
    return []


def check_json_schema(schema: JSON, path: str) -> list[Violation]:
    """Is ``schema`` a usable JSON Schema? Every problem is reported with its path.

    Its regexes must compile with RE2 (see ``domain.jsonschemas``): a pattern that
    needs backtracking is refused here rather than run later."""
    if not isinstance(schema, dict):
        return [Violation(path, "must be a JSON Schema object")]
    if len(json.dumps(schema)) > MAX_SCHEMA_BYTES:
        return [Violation(path, f"must be at most {MAX_SCHEMA_BYTES} bytes of JSON")]
    violations = jsonschemas.check_schema(schema, path)
    violations += [
        Violation(ref_path, "only local references ('#/…') are allowed")
        for ref_path, ref in _refs(schema, path)
        if not ref.startswith("#")
    ]
    return violations[:MAX_VIOLATIONS]


def validate_document(schema: JSON, document: JSON, path: str = "$") -> list[Violation]:
    """Violations of ``document`` against ``schema``, one per problem, sorted by path."""
    return jsonschemas.validate(schema, document, path)


def validate_parameters(schema: JSON, parameters: JSON) -> list[Violation]:
    """Parameters are always a JSON object, whatever the schema allows."""
    if not isinstance(parameters, dict):
        return [Violation("$", "parameters must be a JSON object")]
    return validate_document(schema, parameters)


def has_timed_out(
    *, last_check_in: datetime | None, created_at: datetime, timeout_seconds: int, now: datetime
) -> bool:
    """Strict: a gap exactly equal to the timeout has not timed out yet.

    A task type never checked in is measured from its creation (as TopChef does).
    """
    return now - (last_check_in or created_at) > timedelta(seconds=timeout_seconds)


def _refs(node: JSON, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            child = jsonpath.join(path, [key])
            if key == "$ref" and isinstance(value, str):
                yield child, value
            else:
                yield from _refs(value, child)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _refs(value, jsonpath.join(path, [index]))
