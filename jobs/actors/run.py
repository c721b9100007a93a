"""jobs.run: claim a queued job, run its implementation, record the outcome."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable

from db.repositories.job import JobRepository
from domain.jobs import execution
from domain.jobs.execution import Claimed, Outcome, TaskFailure
from jobs import runtime
from jobs.implementations import registry
from jobs.runtime import unit_of_work

log = logging.getLogger(__name__)
CHECK_SECONDS = 1.0


async def run(job_id: int) -> None:
    """Idempotent: a job already claimed, finished or canceled is left alone."""
    worker = runtime.worker_name()
    async with unit_of_work() as uow:
        claimed = await execution.claim(uow, job_id=job_id, worker=worker)
        if claimed is None:
            return
        await uow.commit()
    runtime.job_started()
    try:
        outcome = await perform(claimed, wanted=lambda: _still_wanted(claimed))
    finally:
        runtime.job_ended()
    async with unit_of_work() as uow:
        ended = await execution.finish(
            uow, job_id=job_id, attempt=claimed.attempt, worker=worker, outcome=outcome
        )
        await uow.commit()
    log.info("job %s attempt %s: %s", job_id, claimed.attempt, ended or "moved on meanwhile")


async def _still_wanted(claimed: Claimed) -> bool:
    async with runtime.database().read_session() as session:
        return await execution.still_wanted(
            JobRepository(session), job_id=claimed.job_id, attempt=claimed.attempt
        )


async def perform(
    claimed: Claimed, *, wanted: Callable[[], Awaitable[bool]] | None = None
) -> Outcome:
    """Run the implementation under the task type's time limit; never raises.

    Cooperative cancellation: every CHECK_SECONDS, ``wanted`` says whether the job is
    still this run's (not canceled meanwhile); if not, an async implementation is
    cancelled (a thread cannot be stopped: its outcome is ignored either way).
    """
    task = asyncio.ensure_future(_call(claimed))
    while wanted is not None and not task.done():
        await asyncio.wait({task}, timeout=CHECK_SECONDS)
        if not task.done() and not await wanted():
            task.cancel()
            log.info("job %s was canceled while running: stopped", claimed.job_id)
            return Outcome(failure=TaskFailure("CANCELED", "canceled while running", "DOMAIN"))
    return await task


async def _call(claimed: Claimed) -> Outcome:
    implementation = registry().get(claimed.implementation)
    if implementation is None:
        return Outcome(
            failure=TaskFailure(
                "UNKNOWN_IMPLEMENTATION",
                f"no implementation {claimed.implementation!r} on this worker",
                "CONFIGURATION",
            )
        )
    try:
        if inspect.iscoroutinefunction(implementation):
            call = implementation(claimed.parameters)
        else:
            call = asyncio.to_thread(implementation, claimed.parameters)
        result = await asyncio.wait_for(call, claimed.timeout_seconds)
    except TaskFailure as failure:
        return Outcome(failure=failure)
    except TimeoutError:
        return Outcome(
            failure=TaskFailure(
                "TIMEOUT", f"ran longer than {claimed.timeout_seconds} s", "TIMEOUT"
            )
        )
    except Exception as exc:  # an implementation's bug: recorded on the job, not raised
        log.exception("implementation %s failed", claimed.implementation)
        return Outcome(failure=TaskFailure("IMPLEMENTATION_ERROR", repr(exc)[:1000], "DOMAIN"))
    if not isinstance(result, dict):
        return Outcome(
            failure=TaskFailure(
                "RESULT_INVALID", "an implementation must return a JSON object", "DOMAIN"
            )
        )
    return Outcome(result=result)
