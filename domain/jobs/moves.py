"""The one path for job state changes: sets of moves, one job or a hundred thousand.

Every status change in batchgraph goes through here — creation's first status
aside, which ``db.repositories.moves`` writes with the same history and counters.
A move set is checked against the one transition table (domain/jobs/rules.py),
job by job; one refused move refuses the whole set (InvalidTransitionError naming
the job) and nothing changes. Accepted sets are written by one statement (status,
history rows, recipe completion, counter deltas), then their consequences follow,
each again as a set: dependents unblocked or canceled, ready jobs dispatched.

Two ways to name jobs:

* ``apply`` — explicit moves, each for one job, decided against the job's state
  read under its row lock. ``only_if`` makes a move conditional: a job no longer
  in the expected state (claimed by another worker, canceled meanwhile, retried)
  is skipped quietly instead of refused — the idempotency actors need.
* ``apply_selected`` — every job matching a condition, moved the same way, in
  one statement whatever their number (dispatch, cancel a batch, re-queue a lost
  worker's jobs). The transition is checked for every status the condition admits.

Shaped after Prefect's orchestration: one engine every state change passes
through, with rules that say why (see the ``why`` of each rule).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from db.enums import JobStatus
from db.repositories.moves import BulkChange, JobState, Moved, RowChange, Selection
from db.uow import UnitOfWork
from domain.errors import InvalidTransitionError, NotFoundError
from domain.jobs import revisions
from domain.jobs.rules import ACTIVE, FINAL, Initiator, Rule, check_transition

RUN_ACTOR = "jobs.run"
DISPATCH_SLICE = 5_000
# Jobs per jobs.run message: big enough to spread the broker's and the database's
# cost per message over many no-op jobs, small enough to keep many messages (and so
# many workers) busy on a small batch. See docs/execution.md.
MAX_GROUP = 50
SPREAD = 16

UNKNOWN_IMPLEMENTATION = "UNKNOWN_IMPLEMENTATION"


@dataclass(frozen=True, slots=True)
class Expect:
    """A condition a job must still meet for its move to apply (else it is skipped)."""

    statuses: frozenset[JobStatus]
    attempt: int | None = None
    worker: str | None = None

    def holds(self, state: JobState) -> bool:
        return (
            state.status in self.statuses
            and (self.attempt is None or state.attempt == self.attempt)
            and (self.worker is None or state.worker == self.worker)
        )


@dataclass(frozen=True, slots=True)
class Move:
    job_id: int
    to: JobStatus
    initiator: Initiator
    reason: str | None = None
    worker: str | None = None  # who reports it; for RUNNING, who runs it
    result: Any = None
    error: tuple[str, str, str] | None = None  # (code, message, category) for FAILED
    by_dependency: bool = False
    only_if: Expect | None = None
    # COMPLETED: the implementation's own time as the worker measured it (None: the
    # job's completed - started stands in for it).
    run_seconds: float | None = None


@dataclass
class Applied:
    moved: list[Moved] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)

    def add(self, other: Applied) -> None:
        self.moved += other.moved
        self.skipped += other.skipped


def decide(state: JobState, move: Move) -> RowChange:
    """The row a move leaves, or InvalidTransitionError (naming the job)."""
    try:
        rule: Rule = check_transition(state.status, move.to, move.initiator)
    except InvalidTransitionError as exc:
        raise InvalidTransitionError(f"Job {state.id}: {exc.message}") from exc
    if rule.new_attempt:
        attempt, worker = state.attempt + 1, None
    elif move.to is JobStatus.RUNNING:
        attempt, worker = state.attempt, move.worker
    else:
        attempt, worker = state.attempt, state.worker
    completed = move.to is JobStatus.COMPLETED
    failed = move.to is JobStatus.FAILED and move.error is not None
    return RowChange(
        id=state.id,
        from_status=state.status,
        to_status=move.to,
        attempt=attempt,
        worker=worker,
        event_worker=move.worker or (None if rule.new_attempt else state.worker),
        reason=(move.reason or rule.why)[:2000],
        new_attempt=rule.new_attempt,
        by_dependency=move.by_dependency,
        result=move.result if completed else None,
        set_result=completed or rule.new_attempt,
        error=move.error if failed else None,
        set_error=failed or rule.new_attempt,
        run_seconds=move.run_seconds if completed else None,
    )


async def apply(
    uow: UnitOfWork,
    moves: Sequence[Move],
    *,
    states: Sequence[JobState] | None = None,
    skip_locked: bool = False,
) -> Applied:
    """Check and write a set of explicit moves, then settle their consequences.

    ``states``: the jobs as already locked by the caller (else they are locked
    here, in id order). A job that does not exist is NotFoundError, unless its move
    is conditional (``only_if``) or ``skip_locked`` (then it is skipped).
    """
    if not moves:
        return Applied()
    if states is None:
        states = await uow.moves.lock([m.job_id for m in moves], skip_locked=skip_locked)
    by_id = {s.id: s for s in states}
    changes: list[RowChange] = []
    applied = Applied()
    for move in moves:
        state = by_id.get(move.job_id)
        if state is None:
            if move.only_if is None and not skip_locked:
                raise NotFoundError(f"No job with id {move.job_id}")
            applied.skipped.append(move.job_id)
        elif move.only_if is not None and not move.only_if.holds(state):
            applied.skipped.append(move.job_id)
        else:
            changes.append(decide(state, move))
    applied.moved = await uow.moves.write(changes)
    applied.add(await settle(uow, applied.moved))
    return applied


async def apply_selected(
    uow: UnitOfWork,
    selection: Selection,
    change: BulkChange,
    *,
    initiator: Initiator,
    from_statuses: Iterable[JobStatus],
    settle_after: bool = True,
) -> Applied:
    """Move every job the selection matches that is in one of ``from_statuses`` the
    same way, in one statement (the statement itself keeps to those statuses)."""
    allowed = _check_bulk(change, initiator, from_statuses)
    applied = Applied(moved=await uow.moves.move_selected(selection, change, allowed))
    if settle_after:
        applied.add(await settle(uow, applied.moved))
    return applied


async def apply_selected_final(
    uow: UnitOfWork,
    selection: Selection,
    change: BulkChange,
    *,
    initiator: Initiator,
    from_statuses: Iterable[JobStatus],
) -> int:
    """``apply_selected`` for a final move nothing follows from (every unfinished job of
    a batch canceled at once): one statement that reads no job back. Returns how many
    moved."""
    if change.to_status not in FINAL:  # pragma: no cover - a bug
        raise ValueError("only a final move has no consequences to settle")
    allowed = _check_bulk(change, initiator, from_statuses)
    return await uow.moves.move_selected_count(selection, change, allowed)


def _check_bulk(
    change: BulkChange, initiator: Initiator, from_statuses: Iterable[JobStatus]
) -> list[JobStatus]:
    """Every status the selection admits may make this move (else InvalidTransitionError);
    returned for the statement, which selects only jobs in them whatever its condition."""
    allowed = sorted(set(from_statuses))
    rules = [check_transition(s, change.to_status, initiator) for s in allowed]
    if any(r.new_attempt != change.new_attempt for r in rules):  # pragma: no cover - a bug
        raise ValueError("a bulk change must agree with the rules on starting a new attempt")
    return allowed


def status_in(statuses: Iterable[JobStatus]) -> str:
    """SQL for ``j.status`` among trusted enum values."""
    return "j.status IN (" + ", ".join(f"'{s.value}'" for s in statuses) + ")"


# --- consequences ----------------------------------------------------------------


async def settle(uow: UnitOfWork, moved: Sequence[Moved]) -> Applied:
    """What follows from moves: dependents unblocked (all their dependencies
    COMPLETED) or canceled (a dependency FAILED or was CANCELED), and ready jobs
    dispatched — in sets, one level of the recipe DAG at a time."""
    if not moved:
        return Applied()
    followed = Applied()
    shapes = await revisions.shapes(uow, sorted({m.batch_id for m in moved}))
    waited_for = [m for m in moved if m.node in shapes[m.batch_id].nodes_with_dependents]
    done = [m.id for m in waited_for if m.to_status is JobStatus.COMPLETED]
    dead = [m for m in waited_for if m.to_status in (JobStatus.FAILED, JobStatus.CANCELED)]
    if done:
        followed.add(await _unblock(uow, done))
    if dead:
        followed.add(await _cancel_downstream(uow, dead))
    ready = {m.batch_id for m in [*moved, *followed.moved] if m.to_status is JobStatus.PENDING}
    # A batch that caps its running jobs may run more when some stop running.
    ready |= {
        m.batch_id
        for m in moved
        if m.capped
        and m.from_status in (JobStatus.QUEUED, JobStatus.RUNNING)
        and m.to_status not in (JobStatus.QUEUED, JobStatus.RUNNING)
    }
    for batch_id in sorted(ready):
        followed.add(await dispatch(uow, batch_id=batch_id))
    return followed


async def _unblock(uow: UnitOfWork, completed: Sequence[int]) -> Applied:
    """BLOCKED → PENDING for the dependents whose every dependency has completed.

    Two statements on purpose: the first waits for the row locks of concurrent
    completions of the same dependents; the second starts after them, so it sees
    their dependencies COMPLETED (read committed) and no dependent stays blocked.
    """
    candidates = await uow.jobs.blocked_dependents(completed)
    if not candidates:
        return Applied()
    selection = Selection(
        where="j.id = ANY(CAST(:ids AS bigint[])) AND j.status = 'BLOCKED' AND NOT EXISTS ("
        " SELECT 1 FROM job_dependency x JOIN job y ON y.id = x.depends_on_id"
        " WHERE x.job_id = j.id AND y.status <> 'COMPLETED')",
        params={"ids": candidates},
    )
    change = BulkChange(JobStatus.PENDING, reason="every dependency completed")
    return await apply_selected(
        uow,
        selection,
        change,
        initiator=Initiator.SYSTEM,
        from_statuses=[JobStatus.BLOCKED],
        settle_after=False,
    )


async def _cancel_downstream(uow: UnitOfWork, dead: Sequence[Moved]) -> Applied:
    """Cancel, transitively, every unfinished job downstream of failed or canceled ones."""
    followed = Applied()
    frontier = list(dead)
    while frontier:
        by_cause: dict[tuple[str, JobStatus], list[int]] = defaultdict(list)
        for m in frontier:
            by_cause[(m.node, m.to_status)].append(m.id)
        frontier = []
        for (node, status), ids in sorted(by_cause.items()):
            selection = Selection(
                where=status_in(ACTIVE) + " AND j.id IN (SELECT job_id FROM job_dependency"
                " WHERE depends_on_id = ANY(CAST(:ids AS bigint[])))",
                params={"ids": ids},
            )
            change = BulkChange(
                JobStatus.CANCELED,
                reason=f"dependency {node} {status.lower()}",
                by_dependency=True,
            )
            step = await apply_selected(
                uow,
                selection,
                change,
                initiator=Initiator.SYSTEM,
                from_statuses=ACTIVE,
                settle_after=False,
            )
            followed.add(step)
            frontier += step.moved
    return followed


# --- dispatch ------------------------------------------------------------------------


_UNKNOWN = object()


async def dispatch(
    uow: UnitOfWork, *, batch_id: int, cap: int | object | None = _UNKNOWN
) -> Applied:
    """PENDING → QUEUED for what the batch may run now (``maxParallelJobs`` counts
    QUEUED and RUNNING jobs). Fleet jobs get ``jobs.run`` messages after commit, in
    groups; jobs of ``external`` task types wait for pull workers. A job whose
    implementation no connected fleet worker offers (while some are connected)
    fails here with UNKNOWN_IMPLEMENTATION instead of being queued.

    ``cap``: the batch's ``maxParallelJobs`` when the caller holds the batch."""
    if cap is None:
        room: int | None = DISPATCH_SLICE
    elif isinstance(cap, int):
        room = cap - await uow.batches.active_count(batch_id)
    else:
        room = await uow.batches.dispatch_room(batch_id)
    if room is None or room <= 0:
        return Applied()
    room = min(room, DISPATCH_SLICE)
    followed = Applied()
    shape = (await revisions.shapes(uow, [batch_id]))[batch_id]
    broken = sorted(
        await broken_revisions(uow, (await revisions.revisions(uow, shape.revision_ids)).values())
    )
    if broken:
        selection = Selection(
            where="j.batch_id = :batch AND j.status = 'PENDING'"
            " AND j.task_type_revision_id = ANY(CAST(:broken AS bigint[]))",
            params={"batch": batch_id, "broken": broken},
        )
        change = BulkChange(
            JobStatus.FAILED,
            reason="no connected fleet worker offers its implementation",
            error=(
                UNKNOWN_IMPLEMENTATION,
                "no connected fleet worker offers this task type's implementation",
                "CONFIGURATION",
            ),
        )
        followed.add(
            await apply_selected(
                uow,
                selection,
                change,
                initiator=Initiator.SYSTEM,
                from_statuses=[JobStatus.PENDING],
            )
        )
    selection = Selection(
        where="j.batch_id = :batch AND j.status = 'PENDING'",
        params={"batch": batch_id},
        order="j.priority DESC, j.id",
        limit=room,
        skip_locked=True,
    )
    change = BulkChange(
        JobStatus.QUEUED, reason="dispatched to the fleet, or offered to pull workers"
    )
    queued = await apply_selected(
        uow,
        selection,
        change,
        initiator=Initiator.SYSTEM,
        from_statuses=[JobStatus.PENDING],
        settle_after=False,
    )
    followed.add(queued)
    await send_runs(uow, [m for m in queued.moved if m.to_status is JobStatus.QUEUED])
    return followed


def dispatched_reason() -> str:
    return check_transition(JobStatus.PENDING, JobStatus.QUEUED, Initiator.SYSTEM).why


async def broken_revisions(uow: UnitOfWork, known: Iterable[revisions.Revision]) -> set[int]:
    """Revisions whose fleet implementation no connected fleet worker offers, while some
    fleet worker is connected (with none connected, jobs wait for one to come)."""
    offered = await revisions.fleet_offers(uow)
    return {
        r.id for r in known if offered and not r.is_external and r.implementation not in offered
    }


async def send_queued(uow: UnitOfWork, queued: Sequence[tuple[int, int]]) -> None:
    """``jobs.run`` messages (after commit) for the fleet's jobs among these (job id,
    revision id) pairs, in groups."""
    known = await revisions.revisions(uow, {r for _, r in queued})
    fleet = [i for i, r in queued if not known[r].is_external]
    for group in groups(fleet):
        uow.send_after_commit(RUN_ACTOR, *group)


async def send_runs(
    uow: UnitOfWork, queued: Sequence[Moved], *, delay_ms: int | None = None
) -> None:
    """``jobs.run`` messages (after commit) for the fleet's jobs among these, in groups."""
    known = await revisions.revisions(uow, {m.task_type_revision_id for m in queued})
    fleet = [m.id for m in queued if not known[m.task_type_revision_id].is_external]
    for group in groups(fleet):
        uow.send_after_commit(RUN_ACTOR, *group, delay_ms=delay_ms)


def groups(ids: Sequence[int]) -> list[list[int]]:
    """Spread ids over at least min(len, SPREAD) messages of at most MAX_GROUP each."""
    if not ids:
        return []
    size = max(1, min(MAX_GROUP, len(ids) // SPREAD))
    return [list(ids[i : i + size]) for i in range(0, len(ids), size)]
