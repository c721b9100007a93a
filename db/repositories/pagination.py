"""Keyset pagination: pages are cut with a row comparison on the sort key, never OFFSET."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import BigInteger, Select, func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from db.errors import InvalidCursorError

T = TypeVar("T")

SortKey = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    keys: list[SortKey]
    has_next: bool


async def keyset_page(
    session: AsyncSession,
    stmt: Select[T],
    *,
    key: Sequence[Any],
    after: SortKey | None,
    first: int,
    descending: bool = False,
) -> Page[T]:
    """Run ``stmt`` ordered by ``key`` (unique; all ascending or all descending) from
    just after ``after``.

    Reads one row more than asked to know whether a next page exists.
    """
    if after is not None:
        after = check_cursor(after, key)
        position = tuple_(*key) < tuple_(*after) if descending else tuple_(*key) > tuple_(*after)
        stmt = stmt.where(position)
    order = [k.desc() for k in key] if descending else list(key)
    stmt = stmt.add_columns(*key).order_by(*order).limit(first + 1)
    rows: list[Any] = list((await session.execute(stmt)).all())
    has_next = len(rows) > first
    rows = rows[:first]
    return Page(
        items=[row[0] for row in rows],
        keys=[tuple(row[1:]) for row in rows],
        has_next=has_next,
    )


async def count(session: AsyncSession, stmt: Select[Any]) -> int:
    total = await session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery()))
    return int(total or 0)


def check_cursor(after: SortKey, key: Sequence[Any]) -> SortKey:
    """The cursor's values as the key's column types (datetimes travel as ISO text)."""
    if len(after) != len(key):
        raise InvalidCursorError("the cursor does not belong to this list")
    values: list[Any] = []
    for value, column in zip(after, key, strict=True):
        wanted = column.type.python_type
        if wanted is datetime and isinstance(value, str):
            try:
                # Written in UTC with an offset; anything else (naive, or past year 9999
                # once in UTC) would fail in the driver.
                value = datetime.fromisoformat(value)
                if value.utcoffset() is None:
                    raise ValueError("no UTC offset")
                value = value.astimezone(UTC)
            except (ValueError, OverflowError) as exc:
                raise InvalidCursorError("the cursor does not belong to this list") from exc
        if type(value) is not wanted:
            raise InvalidCursorError("the cursor does not belong to this list")
        if isinstance(value, int):
            bound = 2**63 if isinstance(column.type, BigInteger) else 2**31
            if not -bound <= value < bound:
                raise InvalidCursorError("the cursor does not belong to this list")
        values.append(value)
    return tuple(values)
