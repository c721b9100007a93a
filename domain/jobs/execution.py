"""Running jobs, for fleet and pull workers alike: claim, then finish with an outcome.

A worker claims jobs (QUEUED → RUNNING, ``SKIP LOCKED``) in groups, runs them
outside any transaction, and records their outcomes in groups (one transaction,
a few statements, whatever the group's size): a result valid against the result
schema completes a job; a retryable failure with attempts left re-queues it as a
new attempt (after a back-off); anything else fails it with a code. Every change
goes through domain/jobs/moves.py; an outcome for a job that moved on meanwhile
(canceled, or re-queued after its worker was presumed lost) is ignored.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from db.enums import JobStatus
from db.repositories.moves import BulkChange, Moved, Selection
from db.uow import UnitOfWork
from domain import jsonschemas
from domain.artifacts import outputs as artifact_outputs
from domain.artifacts.outputs import Output
from domain.errors import Violation
from domain.jobs import moves, revisions
from domain.jobs.moves import Expect, Move
from domain.jobs.rules import Initiator
from domain.workers.rules import DEFAULT_TIMEOUT_SECONDS

RUN = moves.RUN_ACTOR
RETRYABLE = frozenset({"INFRASTRUCTURE", "TIMEOUT", "WORKER_LOST"})
MAX_BACKOFF_MS = 60_000
PASS_ON_DELAY_MS = 1_000


class TaskFailure(Exception):
    """Raised by an implementation to fail its job with a code and a category."""

    def __init__(self, code: str, message: str, category: str = "DOMAIN") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.category = category


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
    # The implementation's own time, measured by the worker around the call (fleet) or
    # reported by it (pull workers); None: unknown (completed - started stands in).
    run_seconds: float | None = None
    # Artifacts the run made (their bytes stored already): recorded with the completion.
    outputs: tuple[Output, ...] = ()


@dataclass(frozen=True, slots=True)
class Finish:
    job_id: int
    attempt: int
    worker: str
    outcome: Outcome


def backoff_ms(attempt: int) -> int:
    """1 s, 2 s, 4 s, … up to a minute before attempt ``attempt`` + 1."""
    return int(min(1000 * 2 ** (attempt - 1), MAX_BACKOFF_MS))


def check_result(result_schema: Mapping[str, Any], result: Any) -> list[Violation]:
    """The one result check, for fleet and pull workers: a JSON object valid against
    the revision's result schema."""
    if not isinstance(result, dict):
        return [Violation("$", "a result must be a JSON object")]
    return jsonschemas.validate(dict(result_schema), result)


# The worker's metadata as recorded (static over dynamic), or what the process
# reports when it has not registered (tests, embedders).
_METADATA = (
    "coalesce((SELECT w.dynamic_metadata || w.static_metadata FROM worker w"
    " WHERE w.name = :worker), CAST(:meta AS jsonb))"
)


@dataclass
class Claims:
    claimed: list[Claimed]
    pass_on: list[int]  # others could run these (another implementation or metadata)


async def claim(
    uow: UnitOfWork,
    *,
    job_ids: Sequence[int],
    worker: str,
    offered: Collection[str],
    metadata: Mapping[str, Any],
    limit: int,
    running_here: Collection[int] = (),
) -> Claims:
    """QUEUED → RUNNING for up to ``limit`` of these jobs that this fleet worker can
    run (its implementations, the task type's requirements met by its metadata).

    Jobs already RUNNING under this worker but not running in its process (their
    run was interrupted, e.g. by a database restart between claim and run) are
    adopted as they are. Of the rest, a job no connected worker could ever run
    fails at once with UNKNOWN_IMPLEMENTATION (never RUNNING); one another worker
    could run, or one this worker could run but found locked, is returned in
    ``pass_on`` (to be sent again after a short delay).
    """
    wanted = list(dict.fromkeys(job_ids))
    params = {
        "ids": wanted,
        "offered": sorted(offered),
        "meta": _json(metadata),
        "worker": worker,
    }
    selection = Selection(
        join="JOIN task_type_revision r ON r.id = j.task_type_revision_id",
        # status as text: never a reason to scan the partial index of all queued jobs
        # (with stale statistics the planner would, per claim, over every queued job).
        where="j.id = ANY(CAST(:ids AS bigint[])) AND CAST(j.status AS text) = 'QUEUED'"
        " AND r.implementation = ANY(CAST(:offered AS text[]))"
        " AND r.requirements <@ " + _METADATA,
        params=params,
        order="j.priority DESC, j.id",
        limit=limit,
        skip_locked=True,
    )
    started = await moves.apply_selected(
        uow,
        selection,
        BulkChange(JobStatus.RUNNING, reason="a worker started it", worker=worker),
        initiator=Initiator.WORKER,
        from_statuses=[JobStatus.QUEUED],
        settle_after=False,
    )
    # The runs of this worker among these jobs that its process is not running: the
    # ones just claimed, and any whose run was interrupted (adopted as they are).
    taken = await uow.jobs.runs_to_start(wanted, worker=worker, running_here=list(running_here))
    known = await revisions.revisions(uow, {t.revision_id for t in taken})
    claimed = [
        Claimed(
            t.id,
            t.attempt,
            known[t.revision_id].implementation,
            t.parameters,
            known[t.revision_id].timeout_seconds,
        )
        for t in taken
    ]
    pass_on: list[int] = []
    rest = [i for i in wanted if i not in {c.job_id for c in claimed}]
    if rest and len(started.moved) < limit:
        cutoff = timedelta(seconds=DEFAULT_TIMEOUT_SECONDS)
        unfit: list[Move] = []
        for job_id, implementation, fits_me, someone_fits in await uow.jobs.fit(
            rest, worker=worker, metadata=_json(metadata), worker_timeout=cutoff
        ):
            if (implementation in offered and fits_me) or someone_fits:
                # Another worker may run it; or this one could, but found it locked by
                # another transaction (or queued since this claim's snapshot). Either
                # way it is asked again shortly: a claim that held it has moved it on
                # by then (nothing happens), and nothing else may leave it waiting for
                # the resend safety net (a minute).
                pass_on.append(job_id)
            elif implementation not in offered and not await _offered_anywhere(uow, implementation):
                unfit.append(
                    Move(
                        job_id,
                        JobStatus.FAILED,
                        Initiator.WORKER,
                        reason="could not start: unknown implementation",
                        worker=worker,
                        error=(
                            moves.UNKNOWN_IMPLEMENTATION,
                            f"no implementation {implementation!r} on any connected worker",
                            "CONFIGURATION",
                        ),
                        only_if=Expect(frozenset({JobStatus.QUEUED})),
                    )
                )
        await moves.apply(uow, unfit)
    return Claims(claimed=claimed, pass_on=pass_on)


async def _offered_anywhere(uow: UnitOfWork, implementation: str) -> bool:
    return implementation in await revisions.fleet_offers(uow)


async def still_running(uow: UnitOfWork, runs: Sequence[tuple[int, int]]) -> set[int]:
    """Those of these (job, attempt) runs that are still their job's current run."""
    states = await uow.jobs.states([job_id for job_id, _ in runs])
    return {
        job_id for job_id, attempt in runs if states.get(job_id) == (JobStatus.RUNNING, attempt)
    }


async def finish(uow: UnitOfWork, finishes: Sequence[Finish]) -> dict[int, JobStatus | None]:
    """Record how runs ended, in one move set. Per job: its new status, or None when
    it moved on meanwhile (canceled, or re-queued after its worker was presumed lost)."""
    states = await uow.moves.lock([f.job_id for f in finishes])
    by_id = {s.id: s for s in states}
    known = await revisions.revisions(uow, {s.task_type_revision_id for s in states})
    refused = await _refused_outputs(uow, finishes)
    decided: list[Move] = []
    for f in finishes:
        state = by_id.get(f.job_id)
        if state is None:
            continue
        expect = Expect(frozenset({JobStatus.RUNNING}), attempt=f.attempt, worker=f.worker)
        failure = f.outcome.failure or refused.get(f.job_id)
        if failure is None:
            problems = check_result(
                known[state.task_type_revision_id].result_schema, f.outcome.result
            )
            if not problems:
                decided.append(
                    Move(
                        f.job_id,
                        JobStatus.COMPLETED,
                        Initiator.WORKER,
                        worker=f.worker,
                        result=f.outcome.result,
                        only_if=expect,
                        run_seconds=f.outcome.run_seconds,
                    )
                )
                continue
            failure = TaskFailure(
                "RESULT_INVALID",
                "; ".join(f"{v.path}: {v.message}" for v in problems[:5]),
                "DOMAIN",
            )
        if failure.category in RETRYABLE and state.attempt < state.max_attempts:
            decided.append(
                Move(
                    f.job_id,
                    JobStatus.QUEUED,
                    Initiator.SYSTEM,
                    reason=f"retrying after {failure.code}: {failure.message}"[:500],
                    only_if=expect,
                )
            )
        else:
            decided.append(
                Move(
                    f.job_id,
                    JobStatus.FAILED,
                    Initiator.WORKER,
                    worker=f.worker,
                    error=(failure.code[:100], failure.message[:10_000], failure.category[:50]),
                    only_if=expect,
                )
            )
    applied = await moves.apply(uow, decided, states=states)
    await _record_outputs(uow, finishes, applied.moved)
    await resend_retries(uow, [m for m in applied.moved if m.from_status is JobStatus.RUNNING])
    ended: dict[int, JobStatus | None] = {f.job_id: None for f in finishes}
    for m in applied.moved:
        if m.id in ended and m.from_status is JobStatus.RUNNING:
            ended[m.id] = m.to_status
    return ended


async def _refused_outputs(uow: UnitOfWork, finishes: Sequence[Finish]) -> dict[int, TaskFailure]:
    """Runs whose outputs cannot be recorded fail (OUTPUT_INVALID) instead of completing.
    Costs nothing for runs without outputs."""
    refused: dict[int, TaskFailure] = {}
    with_outputs = [f for f in finishes if f.outcome.outputs and f.outcome.failure is None]
    if not with_outputs:
        return refused
    jobs = await uow.jobs.get_many([f.job_id for f in with_outputs])
    for f, job in zip(with_outputs, jobs, strict=True):
        if job is None:
            continue
        found = await artifact_outputs.problems(uow, job.workspace_id, f.outcome.outputs)
        if found:
            refused[f.job_id] = TaskFailure("OUTPUT_INVALID", "; ".join(found[:5]), "DOMAIN")
    return refused


async def _record_outputs(
    uow: UnitOfWork, finishes: Sequence[Finish], moved: Sequence[Moved]
) -> None:
    """The outputs of the runs that just COMPLETED, in the completing transaction."""
    completed = {
        m.id
        for m in moved
        if m.from_status is JobStatus.RUNNING and m.to_status is JobStatus.COMPLETED
    }
    recording = [f for f in finishes if f.outcome.outputs and f.job_id in completed]
    if not recording:
        return
    jobs = await uow.jobs.get_many([f.job_id for f in recording])
    workspaces = await uow.workspaces.get_many(sorted({j.workspace_id for j in jobs if j}))
    by_id = {w.id: w for w in workspaces if w is not None}
    for f, job in zip(recording, jobs, strict=True):
        assert job is not None
        await artifact_outputs.record(
            uow, job_id=f.job_id, workspace=by_id[job.workspace_id], outputs=f.outcome.outputs
        )


async def resend_retries(uow: UnitOfWork, moved: Sequence[Moved]) -> None:
    """Fleet jobs re-queued as a new attempt get their message after a back-off."""
    by_delay: dict[int, list[Moved]] = defaultdict(list)
    for m in moved:
        if m.to_status is JobStatus.QUEUED:
            by_delay[backoff_ms(m.attempt - 1)].append(m)
    for delay, group in sorted(by_delay.items()):
        await moves.send_runs(uow, group, delay_ms=delay)


def _json(value: Mapping[str, Any]) -> str:
    return json.dumps(dict(value))


async def lose_runs(
    uow: UnitOfWork,
    *,
    where: str,
    params: Mapping[str, Any],
    why: str,
    code: str = "WORKER_LOST",
    category: str = "WORKER_LOST",
    join: str = "",
) -> int:
    """RUNNING jobs whose run is lost (worker lost or restarted, time limit passed):
    QUEUED as a new attempt while attempts are left (fleet jobs get their message),
    else FAILED with ``code``. Two statements, whatever their number."""
    base = f"j.status = 'RUNNING' AND ({where})"
    again = await moves.apply_selected(
        uow,
        Selection(where=base + " AND j.attempt < j.max_attempts", params=dict(params), join=join),
        BulkChange(JobStatus.QUEUED, reason=why[:500], new_attempt=True),
        initiator=Initiator.SYSTEM,
        from_statuses=[JobStatus.RUNNING],
    )
    out = await moves.apply_selected(
        uow,
        Selection(where=base + " AND j.attempt >= j.max_attempts", params=dict(params), join=join),
        BulkChange(JobStatus.FAILED, reason=why[:500], error=(code, why[:10_000], category)),
        initiator=Initiator.SYSTEM,
        from_statuses=[JobStatus.RUNNING],
    )
    await moves.send_runs(uow, again.moved)
    return len(again.moved) + len(out.moved)
