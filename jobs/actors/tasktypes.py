"""Task type actors: thin, idempotent, one unit of work each."""

from __future__ import annotations

import logging

from domain.auth.rules import SYSTEM_ACTOR
from domain.errors import DomainError
from domain.tasktypes import service
from jobs.runtime import unit_of_work

log = logging.getLogger(__name__)


async def check_in(task_type_id: int) -> None:
    """A check-in sent through the broker (fire-and-forget for implementations)."""
    async with unit_of_work() as uow:
        try:
            await service.check_in(uow, task_type_id=task_type_id, actor=SYSTEM_ACTOR)
        except DomainError as exc:
            log.warning("tasktypes.check_in(%s) refused: %s", task_type_id, exc.message)
            return
        await uow.commit()
