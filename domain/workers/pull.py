"""External (pull) workers over the API, with a worker token (debusine's protocol).

A worker registers and receives a WORKER token that starts disabled: an admin
enables it. Then it heartbeats, claims jobs of ``external`` task types, and
completes or fails them; only the worker a job is assigned to may finish it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from db.enums import FailureCategory, JobStatus, TokenRole, WorkerKind
from db.models import Job, Worker
from db.uow import UnitOfWork
from domain.auth import service as auth
from domain.auth.rules import Actor, require_role
from domain.errors import (
    ForbiddenError,
    InvalidTransitionError,
    NotFoundError,
    SchemaMismatchError,
    Violation,
    raise_if_invalid,
)
from domain.jobs import execution
from domain.jobs import service as jobs
from domain.jobs.rules import Initiator
from domain.tasktypes.rules import validate_document
from domain.workers import rules
from domain.workers.service import heartbeat

MAX_METADATA_BYTES = 16 * 1024


@dataclass(frozen=True, slots=True)
class Registered:
    worker: Worker
    secret: str  # the worker's token, shown once; disabled until an admin enables it


def _check_metadata(metadata: Any, path: str) -> list[Violation]:
    if not isinstance(metadata, dict):
        return [Violation(path, "must be a JSON object")]
    if len(json.dumps(metadata)) > MAX_METADATA_BYTES:
        return [Violation(path, f"must be at most {MAX_METADATA_BYTES} bytes of JSON")]
    return []


async def register(uow: UnitOfWork, *, host: str, concurrency: int, metadata: Any) -> Registered:
    violations = _check_metadata(metadata, "$.metadata")
    if not host.strip() or len(host) > 255:
        violations.append(Violation("$.host", "must be 1–255 characters"))
    if not 1 <= concurrency <= 1000:
        violations.append(Violation("$.concurrency", "must be between 1 and 1000"))
    raise_if_invalid("Invalid worker", violations)
    await uow.workers.lock_naming()
    name = rules.free_name(host, await uow.workers.names_like(rules.slugify(host)))
    token = await auth.create_worker_token(uow, owner=f"worker {name}")
    worker = Worker(
        name=name,
        kind=WorkerKind.EXTERNAL,
        token_id=token.token.id,
        host=host.strip(),
        concurrency=concurrency,
        enabled=True,
        static_metadata={},
        dynamic_metadata=metadata,
    )
    await uow.workers.insert(worker)
    return Registered(worker=worker, secret=token.secret)


async def _me(uow: UnitOfWork, actor: Actor | None, *, lock: bool = False) -> Worker:
    who = require_role(actor, TokenRole.WORKER)
    worker = await uow.workers.get_by_token(who.token_id, for_update=lock)
    if worker is None:
        raise ForbiddenError("This token belongs to no registered worker")
    return worker


async def beat(uow: UnitOfWork, *, metadata: Any, actor: Actor | None) -> Worker:
    raise_if_invalid("Invalid heartbeat", _check_metadata(metadata, "$.metadata"))
    worker = await _me(uow, actor)
    await heartbeat(uow, worker_id=worker.id, dynamic_metadata=metadata)
    return worker


async def claim(
    uow: UnitOfWork, *, task_types: list[str] | None, running: list[int], actor: Actor | None
) -> Job | None:
    """The next job for this worker, or None. Jobs assigned to it but not in
    ``running`` (it restarted and lost them) go back to the queue first."""
    worker = await _me(uow, actor, lock=True)
    if not worker.enabled:
        raise ForbiddenError(f"Worker {worker.name} is disabled")
    await heartbeat(uow, worker_id=worker.id, dynamic_metadata=worker.dynamic_metadata)
    for lost in await uow.jobs.running_on(worker.name):
        if lost.id not in running:
            await requeue_running_one(uow, lost, why=f"worker {worker.name} restarted")
    if await uow.jobs.running_count(worker.name) >= worker.concurrency:
        return None
    meta = rules.metadata(worker.static_metadata, worker.dynamic_metadata)
    allow, deny = meta.get("tasks_allowlist"), meta.get("tasks_denylist") or []
    wanted = task_types
    if isinstance(allow, list):  # an allow-list wins over a deny-list
        wanted = [t for t in (wanted if wanted is not None else allow) if t in allow]
        deny = []
    found = await uow.jobs.claim_next_external(task_types=wanted, exclude=list(deny))
    if found is None:
        return None
    await jobs.transition(
        uow, found, JobStatus.RUNNING, initiator=Initiator.WORKER, worker=worker.name
    )
    return found


async def requeue_running_one(uow: UnitOfWork, job: Job, *, why: str) -> None:
    if job.attempt < job.max_attempts:
        await jobs.transition(uow, job, JobStatus.QUEUED, initiator=Initiator.SYSTEM, reason=why)
    else:
        await jobs.fail(
            uow,
            job,
            code="WORKER_LOST",
            message=why,
            category="WORKER_LOST",
            worker=job.worker or "",
            initiator=Initiator.SYSTEM,
        )


async def _assigned(uow: UnitOfWork, job_id: int, actor: Actor | None) -> tuple[Worker, Job]:
    worker = await _me(uow, actor)
    locked = await uow.jobs.lock([job_id])
    if not locked:
        raise NotFoundError(f"No job with id {job_id}")
    job = locked[0]
    if job.worker != worker.name:
        raise ForbiddenError(f"Job {job_id} is not assigned to worker {worker.name}")
    return worker, job


async def complete(uow: UnitOfWork, *, job_id: int, result: Any, actor: Actor | None) -> Job:
    """Only the assigned worker; an invalid result changes nothing (neither result nor status)."""
    worker, job = await _assigned(uow, job_id, actor)
    if job.status is not JobStatus.RUNNING:
        raise InvalidTransitionError(f"Job {job_id} is {job.status}, not RUNNING")
    [revision] = await uow.task_types.get_revisions_by_id([job.task_type_revision_id])
    assert revision is not None
    problems = (
        [Violation("$", "a result must be a JSON object")]
        if not isinstance(result, dict)
        else validate_document(revision.result_schema, result)
    )
    if problems:
        raise SchemaMismatchError(
            "The result does not match the task type's result schema", problems
        )
    await jobs.complete(uow, job, result=result, worker=worker.name)
    return job


async def fail(
    uow: UnitOfWork,
    *,
    job_id: int,
    code: str,
    message: str,
    category: FailureCategory,
    actor: Actor | None,
) -> Job:
    """Only the assigned worker; a retryable category with attempts left re-queues it."""
    worker, job = await _assigned(uow, job_id, actor)
    if job.status is not JobStatus.RUNNING:
        raise InvalidTransitionError(f"Job {job_id} is {job.status}, not RUNNING")
    raise_if_invalid(
        "Invalid failure",
        [
            Violation(path, f"must be 1–{n} characters")
            for path, value, n in (
                ("$.code", code, 100),
                ("$.message", message, 10_000),
            )
            if not value.strip() or len(value) > n
        ],
    )
    await execution.finish(
        uow,
        job_id=job.id,
        attempt=job.attempt,
        worker=worker.name,
        outcome=execution.Outcome(
            failure=execution.TaskFailure(code, message, FailureCategory(category).value)
        ),
    )
    return job
