"""Relay connections with keyset cursors (an opaque encoding of the sort key, never an offset)."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import strawberry
from strawberry import relay

from db.repositories.pagination import Page, SortKey
from domain.errors import ErrorCode, LimitExceededError
from graphql_api import safejson
from graphql_api.context import Info, Reads
from graphql_api.errors import ApiError

T = TypeVar("T")
N = TypeVar("N")


@strawberry.type(name="Edge")
class Edge(Generic[N]):
    cursor: str
    node: N


@strawberry.type(name="Connection")
class Connection(Generic[N]):
    edges: list[Edge[N]]
    page_info: relay.PageInfo
    _count: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field(description="How many items the whole list holds (one extra query).")
    async def total_count(self) -> int:
        return await self._count()


@dataclass(frozen=True, slots=True)
class PageArgs:
    first: int
    after: SortKey | None


def page_args(first: int | None, after: str | None, *, default: int, maximum: int) -> PageArgs:
    """Bounded paging: ``first`` defaults, may not exceed the maximum, cursors must decode."""
    size = default if first is None else first
    if size < 0:
        raise ApiError(ErrorCode.BAD_REQUEST, "first must not be negative")
    if size > maximum:
        raise LimitExceededError(f"first may be at most {maximum}")
    return PageArgs(first=size, after=decode_cursor(after) if after is not None else None)


def encode_cursor(key: SortKey) -> str:
    raw = json.dumps(list(key), separators=(",", ":"), default=str).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


# A cursor is a flat JSON array of strings and integers (the sort key).
CURSOR_DEPTH = 1
NOT_A_CURSOR = "after is not a cursor from this API"


def decode_cursor(cursor: str) -> SortKey:
    """The sort key a cursor carries, or BAD_REQUEST: whatever the text, no other error.

    Decoded with graphql_api.safejson, so nesting (a RecursionError in ``json``), NUL
    characters and lone surrogates (refused by the driver) never get further. Whether
    the key fits the list it is given to (arity, column types, ranges) is checked
    where the list's sort key is known (db.repositories.pagination.check_cursor).
    """
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        raw = base64.urlsafe_b64decode(padded.encode())
        value = safejson.loads(raw, max_depth=CURSOR_DEPTH)
    except (ValueError, binascii.Error) as exc:  # UnsafeJsonError and UnicodeError included
        raise ApiError(ErrorCode.BAD_REQUEST, NOT_A_CURSOR) from exc
    if not isinstance(value, list) or not all(
        isinstance(v, str | int) and not isinstance(v, bool) for v in value
    ):
        raise ApiError(ErrorCode.BAD_REQUEST, NOT_A_CURSOR)
    return tuple(value)


def connection(
    page: Page[Any],
    convert: Callable[[Any], N],
    count: Callable[[], Awaitable[int]],
    *,
    after: SortKey | None,
) -> Connection[N]:
    edges = [
        Edge(cursor=encode_cursor(key), node=convert(item))
        for item, key in zip(page.items, page.keys, strict=True)
    ]
    return Connection(
        edges=edges,
        page_info=relay.PageInfo(
            has_next_page=page.has_next,
            has_previous_page=after is not None,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else None,
        ),
        _count=count,
    )


async def paginate(
    info: Info,
    *,
    first: int | None,
    after: str | None,
    page: Callable[[Reads, PageArgs], Awaitable[Page[Any]]],
    count: Callable[[Reads], Awaitable[int]],
    convert: Callable[[Any], N],
) -> Connection[N]:
    """One bounded page on its own read session; the total only if asked, on another."""
    limits = info.context.settings.limits
    args = page_args(first, after, default=limits.default_page_size, maximum=limits.max_page_size)
    async with info.context.reads() as reads:
        found = await page(reads, args)

    async def total() -> int:
        async with info.context.reads() as reads:
            return await count(reads)

    return connection(found, convert, total, after=args.after)


async def nested_page(
    info: Info,
    *,
    first: int | None,
    after: str | None,
    total: int,
    batched: Callable[[int], Awaitable[Page[Any]]],
    direct: Callable[[Reads, PageArgs], Awaitable[Page[Any]]],
    convert: Callable[[Any], N],
) -> Connection[N]:
    """A list under each item of another list: the first page loads for every parent at
    once (a DataLoader); later pages (with ``after``) are one parent's own query."""
    limits = info.context.settings.limits
    args = page_args(first, after, default=limits.default_page_size, maximum=limits.max_page_size)
    if args.after is None:
        found = await batched(args.first)
    else:
        async with info.context.reads() as reads:
            found = await direct(reads, args)

    async def count() -> int:
        return total

    return connection(found, convert, count, after=args.after)
