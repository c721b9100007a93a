"""Hiding what the caller may not read: a row of a workspace it cannot see is null."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

from domain.workspaces.service import can_read
from graphql_api.context import Info

N = TypeVar("N")


class InWorkspace(Protocol):
    @property
    def workspace_id(self) -> int: ...


R = TypeVar("R", bound=InWorkspace)


async def visible(
    info: Info, rows: Sequence[R | None], convert: Callable[[R], N]
) -> list[N | None]:
    """Each row converted if its workspace is readable by the caller, else None."""
    workspaces = await info.context.loaders.workspace.load_many(
        [r.workspace_id if r is not None else 0 for r in rows]
    )
    return [
        convert(r) if r is not None and w is not None and can_read(w, info.context.actor) else None
        for r, w in zip(rows, workspaces, strict=True)
    ]
