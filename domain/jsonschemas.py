"""Client-supplied JSON Schemas, compiled in one place, with every regex run by RE2.

A task type's schemas are written by its authors and evaluated against documents
sent by anyone who may read the task type. Python's ``re`` backtracks: a pattern
such as ``^(a+)+$`` takes seconds that double with each character, and the API
process stops answering meanwhile. RE2 runs in time linear in the input whatever
the pattern, so it is the only engine that sees a client's regex:

* ``pattern``, ``patternProperties`` (and the keywords that consult it:
  ``additionalProperties``, ``unevaluatedProperties``) in every draft;
* ``format: "regex"``, both in documents and when a schema itself is checked.

Other ``format`` checkers are bounded too: strings over ``MAX_FORMAT_CHARS`` fail
their format, and ``iri`` is checked through its URI mapping (see ``_iri_via_uri``).

jsonschema calls ``re.search`` from its keyword functions and from the private
helpers behind ``additionalProperties`` and ``unevaluatedProperties``; rather than
copy those helpers, the ``re`` those modules see is replaced, once, by a stand-in
whose ``search`` is RE2's. ``tests/domain/test_jsonschemas.py`` exercises each of
those keywords with a catastrophic pattern, so an upgrade that moves the calls
fails there rather than in production.

Patterns RE2 cannot compile (backreferences, lookaround) are refused when a
schema is created; one stored before that rule reports a violation when used.
"""

from __future__ import annotations

import functools
import importlib
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import re2
from jsonschema import Draft202012Validator, FormatChecker, ValidationError
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for
from referencing.exceptions import Unresolvable

from domain import jsonpath
from domain.errors import Violation

JSON = Any
MAX_VIOLATIONS = 50
RE2_RULE = "patterns must be RE2 syntax: no backreferences, lookahead or lookbehind"
# RE2's own memory budget per compiled pattern (its default): a pattern needing more
# is refused as too large.
_RE2_MAX_MEM = 8 << 20


class UnsupportedPatternError(ValueError):
    """A regex RE2 cannot compile; ``reason`` is RE2's explanation."""

    def __init__(self, pattern: str, reason: str) -> None:
        super().__init__(f"{pattern!r} is not a supported pattern ({RE2_RULE}): {reason}")
        self.pattern = pattern
        self.reason = reason


def _options() -> Any:
    options = re2.Options()
    options.log_errors = False  # the reason is reported to the client, not to stderr
    options.max_mem = _RE2_MAX_MEM
    return options


_OPTIONS = _options()


@functools.lru_cache(maxsize=1024)
def compile_regex(pattern: str) -> Any:
    """RE2's compiled form of ``pattern``, cached: schemas are evaluated many times."""
    if not isinstance(pattern, str):
        raise UnsupportedPatternError(repr(pattern), "a pattern must be a string")
    try:
        return re2.compile(pattern, _OPTIONS)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else str(exc)
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise UnsupportedPatternError(pattern, str(reason)) from None


class _Re2AsRe:
    """What jsonschema's keyword modules see as ``re``: ``search`` is RE2's."""

    error = re.error

    @staticmethod
    def search(pattern: str, string: str, flags: int = 0) -> Any:
        if flags:
            raise ValueError("regex flags are not supported in JSON Schema patterns")
        return compile_regex(pattern).search(string)

    def __getattr__(self, name: str) -> Any:
        return getattr(re, name)


_RE2_AS_RE = _Re2AsRe()
_KEYWORD_MODULES = ("jsonschema._keywords", "jsonschema._legacy_keywords", "jsonschema._utils")
for _name in _KEYWORD_MODULES:
    module = importlib.import_module(_name)
    if not hasattr(module, "re"):  # an upgrade moved the calls: fail loudly, not open
        raise ImportError(f"{_name} no longer imports re; revisit domain/jsonschemas.py")
    module.re = _RE2_AS_RE  # type: ignore[attr-defined]


def _is_re2_regex(instance: object) -> bool:
    if isinstance(instance, str):
        compile_regex(instance)
    return True


class FormatTooLongError(ValueError):
    """A string too long for its ``format`` to be checked in bounded time."""


# Formats name short things (dates, addresses, URIs, templates); some checkers cost
# milliseconds per character. Longer strings fail the format rather than stall.
MAX_FORMAT_CHARS = 8192
_NON_ASCII = re.compile(r"[^\x00-\x7f]")


def _bounded(check: Callable[[object], bool]) -> Callable[[object], bool]:
    def bounded(instance: object) -> bool:
        if isinstance(instance, str) and len(instance) > MAX_FORMAT_CHARS:
            raise FormatTooLongError(
                f"longer than {MAX_FORMAT_CHARS} characters, the most a format is checked on"
            )
        return check(instance)

    return bounded


def _iri_via_uri(uri_check: Callable[[object], bool]) -> Callable[[object], bool]:
    """An IRI is valid when its URI mapping (RFC 3987 §3.1: non-ASCII characters
    percent-encoded as UTF-8) is a valid URI. jsonschema's own IRI checker is a
    general parser costing about a millisecond per character: a 16 KB string took
    12 s of the event loop."""

    def check(instance: object) -> bool:
        if not isinstance(instance, str):
            return True
        return uri_check(_NON_ASCII.sub(lambda m: quote(m.group()), instance))

    return check


def _format_checker(*, only_regex: bool) -> FormatChecker:
    known = FormatChecker()
    checker = FormatChecker(formats=())
    formats: dict[str, tuple[Callable[[object], bool], Any]] = {}
    if not only_regex:
        formats.update(known.checkers)
        for iri, uri in (("iri", "uri"), ("iri-reference", "uri-reference")):
            if uri in known.checkers:
                check, raises = known.checkers[uri]
                formats[iri] = (_iri_via_uri(check), raises)
    formats["regex"] = (_is_re2_regex, UnsupportedPatternError)
    for name, (check, raises) in formats.items():
        caught = raises if isinstance(raises, tuple) else (raises,)
        checker.checks(name, raises=(*caught, FormatTooLongError))(_bounded(check))
    return checker


# Documents: every format jsonschema knows, "regex" by RE2, each with a length bound.
_DOCUMENT_FORMATS = _format_checker(only_regex=False)
# Schemas themselves: only "regex" is asserted, so that the metaschema's ``format:
# regex`` on ``pattern`` and on ``patternProperties``' names refuses what RE2 cannot
# run, and nothing else about the schema's strings changes.
_SCHEMA_FORMATS = _format_checker(only_regex=True)


def validator_class(schema: JSON) -> type[Validator]:
    """The draft ``schema`` declares with ``$schema`` (2020-12 when it declares none)."""
    return validator_for(schema, default=Draft202012Validator)


def check_schema(schema: JSON, path: str) -> list[Violation]:
    """Violations of ``schema`` against its draft's metaschema, regexes included."""
    cls = validator_class(schema)
    meta = cls(cls.META_SCHEMA, format_checker=_SCHEMA_FORMATS)
    found = [_violation(path, _pattern_error(e) or e) for e in meta.iter_errors(schema)]
    return found[:MAX_VIOLATIONS]


def _pattern_error(error: ValidationError) -> ValidationError | None:
    """The unsupported pattern behind ``error``: older metaschemas say ``items`` is
    "a schema or an array of schemas" (anyOf), which hides the regex under context."""
    if isinstance(error.cause, UnsupportedPatternError):
        return error
    for child in error.context or ():
        if (found := _pattern_error(child)) is not None:
            return found
    return None


def _violation(base: str, error: ValidationError) -> Violation:
    where = jsonpath.join(base, error.absolute_path)
    if error.validator == "format" and isinstance(error.cause, UnsupportedPatternError):
        if "propertyNames" in error.absolute_schema_path:  # a patternProperties key
            where = jsonpath.join(where, [str(error.instance)])
        return Violation(where, f"{RE2_RULE} ({error.cause.reason})")
    if error.validator == "format" and isinstance(error.cause, FormatTooLongError):
        return Violation(where, f"is not checked as {error.validator_value!r}: {error.cause}")
    return Violation(where, error.message)


class CompiledSchema:
    """A schema ready to check documents; build once, use for many documents."""

    def __init__(self, schema: JSON) -> None:
        self._validator = validator_class(schema)(schema, format_checker=_DOCUMENT_FORMATS)

    def violations(
        self, document: JSON, path: str = "$", limit: int = MAX_VIOLATIONS
    ) -> list[Violation]:
        """One violation per problem, sorted by path; a schema that cannot be used
        (an unresolvable reference, a pattern stored before RE2 was the rule) is
        itself reported as a violation, never raised."""
        try:
            errors = sorted(
                self._validator.iter_errors(document), key=lambda e: list(map(str, e.path))
            )
        except Unresolvable as exc:
            return [Violation(path, f"the schema has an unresolvable reference: {exc}")]
        except UnsupportedPatternError as exc:
            return [Violation(path, f"the schema cannot be used: {exc}")]
        return [_violation(path, error) for error in errors[:limit]]


def compile_schema(schema: JSON) -> CompiledSchema:
    return CompiledSchema(schema)


def validate(schema: JSON, document: JSON, path: str = "$") -> list[Violation]:
    """Violations of ``document`` against ``schema``, one per problem, sorted by path."""
    return compile_schema(schema).violations(document, path)
