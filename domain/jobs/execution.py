"""Running a job on the fleet: claim, then finish with an outcome.

The fleet worker claims a QUEUED job (SKIP LOCKED) and marks it RUNNING in one
short transaction, runs the implementation outside any transaction, then records
the outcome in another: a result valid against the result schema completes it; a
retryable failure with attempts left re-queues it as a new attempt (with back-off);
anything else fails it with a code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from db.enums import JobStatus
from db.repositories.job import JobRepository
from db.uow import UnitOfWork
from domain.jobs import service
from domain.jobs.rules import Initiator
from domain.tasktypes.rules import validate_document

RUN = "jobs.run"
RETRYABLE = frozenset({"INFRASTRUCTURE", "TIMEOUT", "WORKER_LOST"})
MAX_BACKOFF_MS = 60_000


class TaskFailure(Exception):
    """Raised by an implementation to fail its job with a code and a category."""

    def __init__(self, code: str, message: str, category: str = "DOMAIN") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.category = category


@dataclass(frozen=True, slots=True)
class _Revision:
    implementation: str
    timeout_seconds: int | None
    result_schema: dict[str, Any]


# Revisions never change once written, so each process may keep what it read. (Ids
# are never reused — unless a database is reset under running workers: restart them,
# or call forget_revisions().)
_REVISIONS: dict[int, _Revision] = {}


def forget_revisions() -> None:
    _REVISIONS.clear()


async def _revision(uow: UnitOfWork, revision_id: int) -> _Revision:
    found = _REVISIONS.get(revision_id)
    if found is None:
        [row] = await uow.task_types.get_revisions_by_id([revision_id])
        assert row is not None
        found = _Revision(row.implementation, row.timeout_seconds, row.result_schema)
        if len(_REVISIONS) < 10_000:
            _REVISIONS[revision_id] = found
    return found


@dataclass(frozen=True, slots=True)
class Claimed:
    job_id: int
    attempt: int
    implementation: str
    parameters: dict[str, Any]
    timeout_seconds: int | None


@dataclass(frozen=True, slots=True)
class Outcome:
    result: dict[str, Any] | None = None
    failure: TaskFailure | None = None


def backoff_ms(attempt: int) -> int:
    """1 s, 2 s, 4 s, … up to a minute before attempt ``attempt`` + 1."""
    return int(min(1000 * 2 ** (attempt - 1), MAX_BACKOFF_MS))


async def claim(uow: UnitOfWork, *, job_id: int, worker: str) -> Claimed | None:
    """QUEUED → RUNNING for this worker, or None if someone else has it (or it moved on)."""
    job = await uow.jobs.claim(job_id)
    if job is None:
        return None
    revision = await _revision(uow, job.task_type_revision_id)
    await service.transition(uow, job, JobStatus.RUNNING, initiator=Initiator.WORKER, worker=worker)
    return Claimed(
        job.id, job.attempt, revision.implementation, dict(job.parameters), revision.timeout_seconds
    )


async def still_wanted(jobs: JobRepository, *, job_id: int, attempt: int) -> bool:
    """Is this run still the job's current one (not canceled, not re-queued meanwhile)?"""
    [job] = await jobs.get_many([job_id])
    return job is not None and job.status is JobStatus.RUNNING and job.attempt == attempt


async def finish(
    uow: UnitOfWork, *, job_id: int, attempt: int, worker: str, outcome: Outcome
) -> JobStatus | None:
    """Record how a run ended. Ignored (None) when the job moved on meanwhile
    (canceled, or re-queued after its worker was presumed lost)."""
    locked = await uow.jobs.lock([job_id])
    job = locked[0] if locked else None
    if job is None or job.status is not JobStatus.RUNNING or job.attempt != attempt:
        return None
    failure = outcome.failure
    if failure is None:
        revision = await _revision(uow, job.task_type_revision_id)
        problems = validate_document(revision.result_schema, outcome.result)
        if not problems:
            await service.complete(uow, job, result=outcome.result or {}, worker=worker)
            return JobStatus.COMPLETED
        failure = TaskFailure(
            "RESULT_INVALID",
            "; ".join(f"{v.path}: {v.message}" for v in problems[:5]),
            "DOMAIN",
        )
    if failure.category in RETRYABLE and job.attempt < job.max_attempts:
        await service.transition(
            uow,
            job,
            JobStatus.QUEUED,
            initiator=Initiator.SYSTEM,
            reason=f"retrying after {failure.code}: {failure.message}"[:500],
        )
        uow.send_after_commit(RUN, job.id, delay_ms=backoff_ms(job.attempt - 1))
        return JobStatus.QUEUED
    await service.fail(
        uow,
        job,
        code=failure.code,
        message=failure.message,
        category=failure.category,
        worker=worker,
    )
    return JobStatus.FAILED
