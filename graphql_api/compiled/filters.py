"""Optional filter arguments as SQL conditions over bound parameters.

A filter that is set adds its condition and one parameter; one that is not set adds
nothing. Which ones are set is part of the statement's shape; their values are not.
The conditions mirror the repositories' listings (db/repositories/*), which the
resolvers use: the differential test holds the two to the same answers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, DateTime, Text
from sqlalchemy.sql import FromClause
from sqlalchemy.types import TypeEngine

from graphql_api.compiled.spec import Bound, Build, Expr


@dataclass(frozen=True)
class Filter:
    get: Callable[[Any], Any]  # the value from the argument object; None when not set
    condition: Callable[[FromClause, Expr], Expr]
    type_: TypeEngine[Any]
    to_driver: Callable[[Any], Any] = lambda v: v


class Filters:
    def __init__(self, *items: Filter) -> None:
        self.items = items

    def present(self, source: Any) -> tuple[bool, ...]:
        return tuple(source is not None and f.get(source) is not None for f in self.items)

    def bind(self, source: Any) -> tuple[tuple[bool, ...], tuple[Any, ...]]:
        present = self.present(source)
        values = tuple(
            f.to_driver(f.get(source)) for f, on in zip(self.items, present, strict=True) if on
        )
        return present, values

    def build(
        self, ctx: Build, bound: Bound, start: int, table: FromClause, source: Any
    ) -> list[Expr]:
        conditions = []
        index = start
        for f, on in zip(self.items, self.present(source), strict=True):
            if on:
                conditions.append(f.condition(table, ctx.param(bound, index, f.type_)))
                index += 1
        return conditions


def text_equals(attr: str, column: str) -> Filter:
    return Filter(lambda s: getattr(s, attr), lambda t, v: t.c[column] == v, Text())


def is_(attr: str, column: str) -> Filter:
    """A boolean column (never null) equal to the value (PostgreSQL takes no ``IS $1``)."""
    return Filter(lambda s: getattr(s, attr), lambda t, v: t.c[column] == v, Boolean())


def time_range(attr_after: str, attr_before: str, column: str) -> Sequence[Filter]:
    """[after, before): ``column >= after`` and ``column < before``."""
    return (
        Filter(
            lambda s: getattr(s, attr_after),
            lambda t, v: t.c[column] >= v,
            DateTime(timezone=True),
            _aware,
        ),
        Filter(
            lambda s: getattr(s, attr_before),
            lambda t, v: t.c[column] < v,
            DateTime(timezone=True),
            _aware,
        ),
    )


def _aware(value: datetime) -> datetime:
    return value
