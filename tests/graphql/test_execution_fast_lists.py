"""Lists of plain scalars are completed in one loop (graphql_api/execution.py): the same
answers, nulls and errors — with their paths — as graphql-core's item-by-item path."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import Enum
from typing import Any

import pytest
import strawberry
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from graphql_api.execution import LeafLists


@strawberry.enum
class Colour(Enum):
    RED = "RED"


@strawberry.type
class Query:
    @strawberry.field
    def floats(self) -> list[float | None]:
        return [1.0, None, 2, 0.5]

    @strawberry.field
    def not_finite(self) -> list[float | None]:
        return [1.0, float("nan"), float("inf")]

    @strawberry.field
    def ints(self) -> list[int]:
        return [1, 2, 3]

    @strawberry.field
    def broken_non_null(self) -> list[int]:
        return [1, None, 3]  # type: ignore[list-item]

    @strawberry.field
    def too_big(self) -> list[int | None]:
        return [1, 2**40]

    @strawberry.field
    def words(self) -> list[str]:
        return ["a", "b"]

    @strawberry.field
    def flags(self) -> list[bool]:
        return [True, False]

    @strawberry.field
    def colours(self) -> list[Colour]:
        return [Colour.RED]

    @strawberry.field
    def moments(self) -> list[datetime]:
        return [datetime(2026, 1, 1, tzinfo=UTC)]

    @strawberry.field
    def nested(self) -> list[list[float | None]]:
        return [[1.0, None], []]

    @strawberry.field
    async def awaited(self) -> list[int]:
        return [4, 5]


DOCUMENTS = [
    "{ floats ints words flags }",
    "{ brokenNonNull }",
    "{ tooBig }",
    "{ notFinite }",
    "{ colours moments nested awaited }",
    "{ a: floats b: brokenNonNull c: ints }",
]


class LeafListExecutor(LeafLists, StrawberryGraphQLCoreExecutionContext):
    pass


def schema(executor: type[Any]) -> strawberry.Schema:
    return strawberry.Schema(query=Query, execution_context_class=executor)


@pytest.mark.parametrize("document", DOCUMENTS)
async def test_the_same_answers_and_errors_as_graphql_core(document: str) -> None:
    fast = await schema(LeafListExecutor).execute(document)
    reference = await schema(StrawberryGraphQLCoreExecutionContext).execute(document)
    assert fast.data == reference.data
    assert [(e.message, e.path) for e in fast.errors or []] == [
        (e.message, e.path) for e in reference.errors or []
    ]


async def test_errors_keep_the_item_path() -> None:
    found = await schema(LeafListExecutor).execute("{ brokenNonNull }")
    assert found.errors is not None
    assert found.errors[0].path == ["brokenNonNull", 1]
    big = await schema(LeafListExecutor).execute("{ tooBig }")
    assert big.data == {"tooBig": [1, None]}
    assert big.errors is not None
    assert big.errors[0].path == ["tooBig", 1]


async def test_plain_lists_take_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    import graphql_api.execution as execution

    taken: list[Any] = []
    original = execution._serialize_all

    def counting(*args: Any) -> Any:
        found = original(*args)
        taken.append(found)
        return found

    monkeypatch.setattr(execution, "_serialize_all", counting)
    await schema(LeafListExecutor).execute("{ floats ints words flags colours moments }")
    # floats, ints, words, flags in one loop each; enums and dates are not plain values
    # (moments tries and falls back; colours is an enum type, not a scalar).
    assert taken == [[1.0, None, 2.0, 0.5], [1, 2, 3], ["a", "b"], [True, False], None]
