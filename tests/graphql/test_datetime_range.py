"""DateTime values whose UTC instant falls outside years 1–9999 (``9999-12-31T23:59:59-14:00``
is in year 10000): refused by the scalar as BAD_REQUEST on every DateTime input, on both
read paths, never a 500 from the driver ("date value out of range")."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from db.enums import TokenRole
from db.session import Database
from tests.factories import make_token
from tests.graphql.conftest import Api

EXAMPLES = settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

FILTERS = [
    ("batches", "createdAfter"),
    ("batches", "createdBefore"),
    ("jobs", "createdAfter"),
    ("jobs", "createdBefore"),
    ("jobs", "completedAfter"),
    ("jobs", "completedBefore"),
]
REPORTED = [
    "9999-12-31T23:59:59-14:00",
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59.999999-00:01",
    "0001-01-01T00:00:00.000000+00:01",
]


def in_range(text: str) -> bool:
    """The oracle: does the instant exist in UTC as a Python datetime?"""
    try:
        datetime.fromisoformat(text).astimezone(UTC)
    except OverflowError:
        return False
    return True


def iso(moment: datetime, offset_minutes: int) -> str:
    return moment.replace(tzinfo=timezone(timedelta(minutes=offset_minutes))).isoformat()


# Wall-clock times near both ends of the range (and anywhere), with any offset ±14 h.
_extreme = st.one_of(
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(1, 1, 2)),
    st.datetimes(min_value=datetime(9999, 12, 30), max_value=datetime(9999, 12, 31, 23, 59, 59)),
    st.datetimes(),
)
_offsets = st.integers(min_value=-14 * 60, max_value=14 * 60)
datetimes = st.builds(iso, _extreme, _offsets)


@pytest.fixture
async def admin(db: Database) -> str:
    return (await make_token(db, role=TokenRole.ADMIN))[1]


async def check(api: Api, query: str, variables: dict[str, Any], token: str | None) -> None:
    value = next(iter(variables.values()))
    response = await api.post(query, variables, token=token)
    body = response.json()
    if in_range(value):
        assert response.status_code == 200, body
        assert "errors" not in body, body
    else:
        assert response.status_code == 400, body
        error = body["errors"][0]
        assert error["extensions"]["code"] == "BAD_REQUEST", body
        assert error["extensions"]["requestId"]
        assert "out of range" in error["message"], body


def filter_query(root: str, field: str) -> str:
    return f"query($t: DateTime) {{ {root}(filter: {{{field}: $t}}) {{ totalCount }} }}"


@pytest.mark.parametrize("value", REPORTED)
@pytest.mark.parametrize(("root", "field"), FILTERS)
async def test_the_reported_values_in_literals_are_refused_anonymously(
    api: Api,
    resolver_api: Api,
    db: Database,
    caplog: pytest.LogCaptureFixture,
    root: str,
    field: str,
    value: str,
) -> None:
    query = f'{{ {root}(filter: {{{field}: "{value}"}}) {{ totalCount }} }}'
    with caplog.at_level(logging.WARNING):
        for each in (api, resolver_api):
            status, errors = await each.errors(query)
            assert status == 400
            assert errors[0]["extensions"]["code"] == "BAD_REQUEST"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


@EXAMPLES
@given(value=datetimes, where=st.sampled_from(FILTERS))
async def test_any_offset_at_the_extremes_in_filters(
    api: Api, resolver_api: Api, db: Database, value: str, where: tuple[str, str]
) -> None:
    for each in (api, resolver_api):
        await check(each, filter_query(*where), {"t": value}, None)


@EXAMPLES
@given(value=st.one_of(st.sampled_from(REPORTED), datetimes))
async def test_any_offset_at_the_extremes_in_a_token_expiry(
    api: Api, db: Database, admin: str, value: str
) -> None:
    query = (
        'mutation($e: DateTime) { createToken(input: {owner: "x", role: READER, expiresAt: $e})'
        " { __typename } }"
    )
    await check(api, query, {"e": value}, admin)


async def test_the_last_instant_of_year_9999_in_utc_is_accepted(api: Api, admin: str) -> None:
    data = await api.data(
        'mutation { createToken(input: {owner: "x", role: READER,'
        ' expiresAt: "9999-12-31T23:59:59.999999+00:00"})'
        " { ... on TokenCreated { token { expiresAt } } } }",
        token=admin,
    )
    assert data["createToken"]["token"]["expiresAt"].startswith("9999-12-31T23:59:59.999999")
