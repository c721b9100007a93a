"""Scalars that differ from strawberry's defaults."""

from __future__ import annotations

from datetime import UTC, datetime

import strawberry
from graphql import GraphQLError


def _parse_datetime(value: object) -> datetime:
    """An ISO-8601 date and time *with* a UTC offset; a naive one is refused.

    Stored times are UTC (``timestamptz``); a time without an offset is ambiguous
    (local to whom?) and comparing it with stored ones failed inside the driver.
    GraphQLError, so that graphql-core reports it as the client's mistake.
    """
    if not isinstance(value, str):
        raise GraphQLError("DateTime must be an ISO-8601 string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise GraphQLError(f"{value[:40]!r} is not an ISO-8601 date and time") from exc
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise GraphQLError(
            "DateTime needs a UTC offset, e.g. 2030-01-01T00:00:00Z or 2030-01-01T02:00:00+02:00"
        )
    try:
        # Stored and compared in UTC: an instant outside years 1–9999 *in UTC*
        # (9999-12-31T23:59:59-14:00 is in year 10000) fits neither Python's datetime
        # nor the driver's conversion, even though the text parsed.
        return parsed.astimezone(UTC)
    except OverflowError as exc:
        raise GraphQLError(
            f"{value[:40]!r} is out of range: the instant must fall in years 1 to 9999 in UTC"
        ) from exc


DateTime = strawberry.scalar(
    name="DateTime",
    description="An ISO-8601 date and time with a UTC offset (`2030-01-01T00:00:00Z`);"
    " one without an offset, or whose instant falls outside years 1 to 9999 in UTC, is refused.",
    serialize=lambda value: value.isoformat(),
    parse_value=_parse_datetime,
)
