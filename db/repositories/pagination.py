"""Keyset pagination: pages are cut with a row comparison on the sort key, never OFFSET."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, func, select, tuple_
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
) -> Page[T]:
    """Run ``stmt`` ordered by ``key`` (ascending, unique) from just after ``after``.

    Reads one row more than asked to know whether a next page exists.
    """
    if after is not None:
        _check_cursor(after, key)
        stmt = stmt.where(tuple_(*key) > tuple_(*after))
    stmt = stmt.add_columns(*key).order_by(*key).limit(first + 1)
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


def _check_cursor(after: SortKey, key: Sequence[Any]) -> None:
    if len(after) != len(key) or not all(
        type(value) is column.type.python_type for value, column in zip(after, key, strict=False)
    ):
        raise InvalidCursorError("the cursor does not belong to this list")
