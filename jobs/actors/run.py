"""jobs.run: claim a group of queued jobs, run their implementations, record the outcomes.

One message names up to 50 jobs (domain/jobs/moves.py groups them). The actor
claims them a few at a time — one at first, twice as many each round while they
finish fast — so a group of no-op jobs costs a few transactions, while long jobs
are claimed one by one, just before they start. Each round's transaction records
the previous round's outcomes and claims the next (a group commit).

A database that goes away mid-run costs no outcome: writes are retried on fresh
connections for a while; past that, the outcomes stay in this process and are
written by the presence heartbeat once the database is back (runtime.unsaved).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import time
from collections.abc import Sequence

from db.uow import UnitOfWork
from domain.jobs import execution
from domain.jobs.execution import Claimed, Claims, Finish, Outcome, TaskFailure
from jobs import artifacts as job_artifacts
from jobs import runtime
from jobs.implementations import Implementation, registry, wants_context

log = logging.getLogger(__name__)
CHECK_SECONDS = 1.0
FAST_SECONDS = 0.2  # a round this quick doubles the next round's claim
MAX_ROUND = 50


async def run(*job_ids: int) -> None:
    """Idempotent: jobs already claimed by others, finished or canceled are left alone."""
    worker = runtime.worker_name()
    await runtime.save_unsaved(only=job_ids)  # outcomes of an earlier, interrupted try
    remaining = [i for i in dict.fromkeys(job_ids) if not runtime.is_unsaved(i)]
    done: list[Finish] = []
    size = 1
    while remaining:
        claims = await runtime.in_transaction(
            functools.partial(_round, worker=worker, done=done, remaining=remaining, size=size),
            unsaved=done,
        )
        done = []
        taken = {c.job_id for c in claims.claimed}
        remaining = [i for i in remaining if i not in taken and i not in claims.pass_on]
        if not claims.claimed:
            break
        started = time.monotonic()
        outcomes = await perform_all(claims.claimed)
        done = [
            Finish(c.job_id, c.attempt, worker, o)
            for c, o in zip(claims.claimed, outcomes, strict=True)
        ]
        fast = time.monotonic() - started < FAST_SECONDS
        size = min(MAX_ROUND, size * 2) if fast else 1
    if done:
        await runtime.in_transaction(functools.partial(_finish, done=done), unsaved=done)


async def _round(
    uow: UnitOfWork, *, worker: str, done: list[Finish], remaining: list[int], size: int
) -> Claims:
    if done:
        await _finish(uow, done=done)
    claims = await execution.claim(
        uow,
        job_ids=remaining,
        worker=worker,
        offered=frozenset(registry()),
        metadata=runtime.worker_metadata(),
        limit=size,
        running_here=runtime.running_ids(),
    )
    if claims.pass_on:  # another worker can run these: let it
        uow.send_after_commit(execution.RUN, *claims.pass_on, delay_ms=execution.PASS_ON_DELAY_MS)
    return claims


async def _finish(uow: UnitOfWork, *, done: Sequence[Finish]) -> None:
    ended = await execution.finish(uow, done)
    for f in done:
        log.debug("job %s attempt %s: %s", f.job_id, f.attempt, ended.get(f.job_id) or "moved on")


async def perform_all(claimed: Sequence[Claimed]) -> list[Outcome]:
    """Run claimed jobs side by side; never raises.

    Cooperative cancellation: every CHECK_SECONDS the group asks (one query) which
    runs are still their job's current one; a canceled job's async implementation
    is cancelled (a thread cannot be stopped: its outcome is ignored either way).
    """
    for c in claimed:
        runtime.job_started(c.job_id)
    tasks = {c.job_id: asyncio.ensure_future(_call(c)) for c in claimed}
    stopped: dict[int, Outcome] = {}
    try:
        while True:
            pending = [t for t in tasks.values() if not t.done()]
            if not pending:
                break
            await asyncio.wait(pending, timeout=CHECK_SECONDS)
            live = [(c.job_id, c.attempt) for c in claimed if not tasks[c.job_id].done()]
            if not live:
                break
            wanted = await _still_running(live)
            for job_id, _ in live:
                if job_id not in wanted:
                    tasks[job_id].cancel()
                    stopped[job_id] = Outcome(
                        failure=TaskFailure("CANCELED", "canceled while running", "DOMAIN")
                    )
                    log.info("job %s was canceled while running: stopped", job_id)
    finally:
        for c in claimed:
            runtime.job_ended(c.job_id)
    return [stopped.get(c.job_id) or tasks[c.job_id].result() for c in claimed]


async def _still_running(runs: list[tuple[int, int]]) -> set[int]:
    try:
        async with runtime.unit_of_work() as uow:
            return await execution.still_running(uow, runs)
    except Exception:  # the database is away: keep running, ask again later
        log.warning("could not check whether jobs are still wanted", exc_info=True)
        return {job_id for job_id, _ in runs}


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
    if not wants_context(implementation):
        return await _run(claimed, implementation, (claimed.parameters,))
    try:
        context = await job_artifacts.prepare(claimed.job_id)
    except Exception as exc:  # a store or the database is away: retried
        log.warning("inputs of job %s could not be read", claimed.job_id, exc_info=True)
        return Outcome(
            failure=TaskFailure("INPUTS_UNAVAILABLE", repr(exc)[:1000], "INFRASTRUCTURE")
        )
    try:
        outcome = await _run(claimed, implementation, (claimed.parameters, context))
        if outcome.failure is not None:
            return outcome
        try:
            stored = await job_artifacts.store_outputs(context)
        except Exception as exc:
            log.warning("outputs of job %s could not be stored", claimed.job_id, exc_info=True)
            return Outcome(
                failure=TaskFailure("OUTPUTS_UNSTORED", repr(exc)[:1000], "INFRASTRUCTURE")
            )
        return Outcome(result=outcome.result, outputs=stored, run_seconds=outcome.run_seconds)
    finally:
        await asyncio.to_thread(job_artifacts.cleanup, context)


async def _run(
    claimed: Claimed, implementation: Implementation, args: tuple[object, ...]
) -> Outcome:
    started = time.perf_counter()
    try:
        if inspect.iscoroutinefunction(implementation):
            call = implementation(*args)
        else:
            call = asyncio.to_thread(implementation, *args)
        result = await asyncio.wait_for(call, claimed.timeout_seconds)
    except TaskFailure as failure:
        return Outcome(failure=failure)
    except TimeoutError:
        return Outcome(
            failure=TaskFailure(
                "TIMEOUT", f"ran longer than {claimed.timeout_seconds} s", "TIMEOUT"
            )
        )
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # an implementation's bug: recorded on the job, not raised
        log.exception("implementation %s failed", claimed.implementation)
        return Outcome(failure=TaskFailure("IMPLEMENTATION_ERROR", repr(exc)[:1000], "DOMAIN"))
    # The implementation's own time (its run duration): the claim before it and the
    # group commit after it are the job's, not the run's.
    elapsed = time.perf_counter() - started
    if not isinstance(result, dict):
        return Outcome(
            failure=TaskFailure(
                "RESULT_INVALID", "an implementation must return a JSON object", "DOMAIN"
            )
        )
    return Outcome(result=result, run_seconds=elapsed)
