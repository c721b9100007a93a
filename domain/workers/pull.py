"""External (pull) workers over the API, with a worker token (debusine's protocol).

A worker registers and receives a WORKER token that starts disabled: an admin
enables it. Then it heartbeats, claims jobs of ``external`` task types, and
completes or fails them; only the worker a job is assigned to may finish it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from db.enums import FailureCategory, JobStatus, TokenRole, WorkerKind
from db.models import Job, Worker
from db.repositories.moves import BulkChange, JobState, Selection
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
from domain.jobs import execution, moves, revisions
from domain.jobs import service as jobs
from domain.jobs.rules import Initiator
from domain.text import check_text
from domain.workers import rules
from domain.workers.service import check_metadata, heartbeat


@dataclass(frozen=True, slots=True)
class Registered:
    worker: Worker
    secret: str  # the worker's token, shown once; disabled until an admin enables it


async def register(uow: UnitOfWork, *, host: str, concurrency: int, metadata: Any) -> Registered:
    violations = check_metadata(metadata, "$.metadata")
    violations += check_text(host, "$.host", max_length=rules.MAX_HOST, required=True)
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
    raise_if_invalid("Invalid heartbeat", check_metadata(metadata, "$.metadata"))
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
    await execution.lose_runs(
        uow,
        where="j.worker = :worker AND NOT (j.id = ANY(CAST(:running AS bigint[])))",
        params={"worker": worker.name, "running": running},
        why=f"worker {worker.name} restarted",
    )
    if await uow.jobs.running_count(worker.name) >= worker.concurrency:
        return None
    meta = rules.metadata(worker.static_metadata, worker.dynamic_metadata)
    allow, deny = meta.get("tasks_allowlist"), meta.get("tasks_denylist") or []
    wanted = task_types
    if isinstance(allow, list):  # an allow-list wins over a deny-list
        wanted = [t for t in (wanted if wanted is not None else allow) if t in allow]
        deny = []
    where = (
        "j.status = 'QUEUED' AND r.implementation = 'external'"
        " AND r.requirements <@ CAST(:meta AS jsonb)"
    )
    params: dict[str, Any] = {"meta": json.dumps(meta)}
    if wanted is not None:
        where += " AND t.name = ANY(CAST(:wanted AS text[]))"
        params["wanted"] = list(wanted)
    if deny:
        where += " AND NOT (t.name = ANY(CAST(:deny AS text[])))"
        params["deny"] = [str(d) for d in deny]
    selection = Selection(
        join="JOIN task_type_revision r ON r.id = j.task_type_revision_id"
        " JOIN task_type t ON t.id = r.task_type_id",
        where=where,
        params=params,
        order="j.priority DESC, j.queued_at, j.id",
        limit=1,
        skip_locked=True,
    )
    started = await moves.apply_selected(
        uow,
        selection,
        BulkChange(JobStatus.RUNNING, reason="a worker started it", worker=worker.name),
        initiator=Initiator.WORKER,
        from_statuses=[JobStatus.QUEUED],
        settle_after=False,
    )
    if not started.moved:
        return None
    return await jobs.reread(uow, started.moved[0].id)


async def _assigned(uow: UnitOfWork, job_id: int, actor: Actor | None) -> tuple[Worker, JobState]:
    worker = await _me(uow, actor)
    states = await uow.moves.lock([job_id])
    if not states:
        raise NotFoundError(f"No job with id {job_id}")
    state = states[0]
    if state.worker != worker.name:
        raise ForbiddenError(f"Job {job_id} is not assigned to worker {worker.name}")
    if state.status is not JobStatus.RUNNING:
        raise InvalidTransitionError(f"Job {job_id} is {state.status}, not RUNNING")
    return worker, state


async def complete(
    uow: UnitOfWork,
    *,
    job_id: int,
    result: Any,
    actor: Actor | None,
    run_seconds: float | None = None,
) -> Job:
    """Only the assigned worker; an invalid result changes nothing (neither result nor status).

    ``run_seconds``: the implementation's own time as the worker measured it (its run
    duration); without it, completed - started stands in. A report longer than the time
    since the job started is capped at that (the worker cannot have run it longer)."""
    if run_seconds is not None and not (math.isfinite(run_seconds) and run_seconds >= 0):
        raise_if_invalid(
            "Invalid completion", [Violation("$.runSeconds", "must be a number of seconds >= 0")]
        )
    worker, state = await _assigned(uow, job_id, actor)
    revision = await revisions.revision(uow, state.task_type_revision_id)
    problems = execution.check_result(revision.result_schema, result)
    if problems:
        raise SchemaMismatchError(
            "The result does not match the task type's result schema", problems
        )
    await execution.finish(
        uow,
        [
            execution.Finish(
                job_id,
                state.attempt,
                worker.name,
                execution.Outcome(result=result, run_seconds=run_seconds),
            )
        ],
    )
    return await jobs.reread(uow, job_id)


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
    worker, state = await _assigned(uow, job_id, actor)
    raise_if_invalid(
        "Invalid failure",
        check_text(code, "$.code", max_length=100, required=True)
        + check_text(message, "$.message", max_length=10_000, required=True, multiline=True),
    )
    failure = execution.TaskFailure(code, message, FailureCategory(category).value)
    await execution.finish(
        uow,
        [execution.Finish(job_id, state.attempt, worker.name, execution.Outcome(failure=failure))],
    )
    return await jobs.reread(uow, job_id)
