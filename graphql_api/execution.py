"""The execution context: graphql-core's, with lists of plain scalars completed at once.

graphql-core completes a list item by item — a path object, an awaitable check, a
leaf completion and a null check per item — about 4 µs each. A chain comparison holds
~100,000 numbers in lists (20 batches × 50 nodes × 19 metrics × a few lists), which
cost ~0.4 s that way. A list of a scalar type whose items are plain Python values
needs none of that: each item is serialized, as graphql-core would, in one loop.
Anything else — an item that is not a plain value (an awaitable, an enum, a date), a
null in a non-null list, a value the scalar refuses, a ``@stream`` — takes
graphql-core's own path, so results and errors (with their paths) stay exactly its.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Iterable
from math import isfinite
from typing import Any

from graphql import (
    GraphQLBoolean,
    GraphQLError,
    GraphQLFloat,
    GraphQLList,
    GraphQLNonNull,
    GraphQLOutputType,
    GraphQLResolveInfo,
    GraphQLScalarType,
    GraphQLString,
    Undefined,
)
from graphql.pyutils import AwaitableOrValue, Path
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

PLAIN = frozenset({float, int, str, bool})


# Values these built-in scalars serialize to themselves: no call needed.
AS_IS: dict[GraphQLScalarType, type] = {
    GraphQLBoolean: bool,
    GraphQLString: str,
}


def _serialize_all(
    items: Iterable[Any], scalar: GraphQLScalarType, non_null: bool
) -> list[Any] | None:
    """Every item serialized, or None when one needs graphql-core's own completion."""
    serialize = scalar.serialize
    as_is = AS_IS.get(scalar)
    floats = scalar is GraphQLFloat
    completed: list[Any] = []
    append = completed.append
    try:
        for item in items:
            if item is None:
                if non_null:
                    return None
                append(None)
                continue
            kind = type(item)
            if kind is as_is or (floats and kind is float and isfinite(item)):
                append(item)
                continue
            if kind not in PLAIN:
                return None
            value = serialize(item)
            if value is None or value is Undefined:
                return None
            append(value)
    except (GraphQLError, TypeError, ValueError):
        return None  # graphql-core's path raises it again, located
    return completed


class LeafLists(StrawberryGraphQLCoreExecutionContext):
    """Mixed into the schema's executor (graphql_api/schema.py)."""

    def complete_list_value(
        self,
        return_type: GraphQLList[GraphQLOutputType],
        field_details_list: Any,
        info: GraphQLResolveInfo[Any],
        path: Path,
        result: AsyncIterable[Any] | Iterable[Any],
        position_context: Any,
    ) -> AwaitableOrValue[list[Any]]:
        item_type = return_type.of_type
        non_null = isinstance(item_type, GraphQLNonNull)
        scalar = item_type.of_type if isinstance(item_type, GraphQLNonNull) else item_type
        if (
            isinstance(scalar, GraphQLScalarType)
            and isinstance(result, list | tuple)
            and self.get_stream_usage(field_details_list, path) is None
        ):
            completed = _serialize_all(result, scalar, non_null)
            if completed is not None:
                return completed
        return super().complete_list_value(
            return_type, field_details_list, info, path, result, position_context
        )
