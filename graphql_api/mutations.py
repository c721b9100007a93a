"""The one shape of every mutation: a unit of work, one domain call, commit, payload."""

from __future__ import annotations

import typing
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from db.uow import UnitOfWork
from domain.errors import DomainError
from graphql_api.context import Info
from graphql_api.errors import Error, error_arm

T = TypeVar("T")
S = TypeVar("S")


def _arms(payload: Any) -> tuple[type[Error], ...]:
    """The error arms of a payload union (``Annotated[A | B | C, strawberry.union(...)]``)."""
    union = typing.get_args(payload)[0]
    return tuple(t for t in typing.get_args(union) if isinstance(t, type) and issubclass(t, Error))


async def mutate(
    info: Info,
    payload: Any,
    work: Callable[[UnitOfWork], Awaitable[T]],
    success: Callable[[T], S],
    refine: Callable[[DomainError], Error | None] | None = None,
) -> Any:
    """Run ``work`` in one unit of work and commit it; a domain refusal writes nothing.

    Expected refusals become the payload's error arm (``refine`` may pick a richer
    one); cross-cutting ones (unauthenticated, forbidden, limits) become top-level
    errors.
    """
    async with info.context.unit_of_work() as uow:
        try:
            result = await work(uow)
        except DomainError as exc:
            # Built before the rollback expires what the refusal refers to.
            arm = refine(exc) if refine is not None else None
            return arm if arm is not None else error_arm(exc, _arms(payload))
        await uow.commit()
    return success(result)
