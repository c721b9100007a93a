"""Batch actors: create recipes and jobs in chunks (one chunk per message)."""

from __future__ import annotations

import logging

from domain.batches import service
from domain.errors import DomainError
from jobs.runtime import unit_of_work

log = logging.getLogger(__name__)


async def create_chunk(batch_id: int, cursor: int) -> None:
    """One chunk, then (after commit) the message for the next. Idempotent (see service)."""
    async with unit_of_work() as uow:
        try:
            outcome = await service.create_chunk(uow, batch_id=batch_id, cursor=cursor)
        except DomainError as exc:
            log.warning("batches.create_chunk(%s, %s) refused: %s", batch_id, cursor, exc.message)
            return
        await uow.commit()
    log.info(
        "batch %s: %s recipes, %s jobs from position %s; next %s",
        batch_id,
        outcome.created_recipes,
        outcome.created_jobs,
        cursor,
        outcome.next_cursor,
    )
