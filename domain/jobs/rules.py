"""The job state machine: one transition table, and durations.

Statuses: PENDING (ready, waiting for dispatch), BLOCKED (waiting on
dependencies), QUEUED (sent to the fleet or waiting for a pull worker),
RUNNING, and the final COMPLETED, FAILED, CANCELED. Only an explicit retry (or
the system reviving a job canceled for a dependency) re-opens a final status.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from db.enums import JobStatus
from domain.errors import InvalidTransitionError, Violation
from domain.text import check_text

P, B, Q, R = JobStatus.PENDING, JobStatus.BLOCKED, JobStatus.QUEUED, JobStatus.RUNNING
C, F, X = JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELED

FINAL = frozenset({C, F, X})
# A reason given for a cancel (it becomes the job events' reason).
MAX_REASON = 1_000
ACTIVE = frozenset({P, B, Q, R})


class Initiator(StrEnum):
    USER = "USER"  # a person or script through the API
    WORKER = "WORKER"  # the worker running (or claiming) the job
    SYSTEM = "SYSTEM"  # batchgraph itself: dispatch, dependencies, lost workers


@dataclass(frozen=True, slots=True)
class Rule:
    by: frozenset[Initiator]
    new_attempt: bool
    why: str


def _rule(*by: Initiator, new_attempt: bool = False, why: str) -> Rule:
    return Rule(by=frozenset(by), new_attempt=new_attempt, why=why)


U, W, S = Initiator.USER, Initiator.WORKER, Initiator.SYSTEM

TRANSITIONS: dict[tuple[JobStatus, JobStatus], Rule] = {
    (B, P): _rule(S, why="every dependency completed"),
    (P, Q): _rule(S, why="dispatched to the fleet, or offered to pull workers"),
    (P, F): _rule(
        S, why="broken configuration (e.g. an unknown implementation): failed at dispatch"
    ),
    (Q, R): _rule(W, why="a worker started it"),
    (Q, C): _rule(W, S, why="a late RUNNING report must not break completion"),
    (Q, F): _rule(W, S, why="failed before its RUNNING report arrived, or could not start"),
    (R, C): _rule(W, S, why="finished with a valid result"),
    (R, F): _rule(W, S, why="failed, with no attempts left or not retryable"),
    (R, Q): _rule(S, new_attempt=True, why="worker lost or retryable failure: a new attempt"),
    (P, X): _rule(U, S, why="canceled"),
    (B, X): _rule(U, S, why="canceled, or a dependency failed"),
    (Q, X): _rule(U, S, why="canceled"),
    (R, X): _rule(U, S, why="canceled while running (cooperatively)"),
    (F, P): _rule(U, new_attempt=True, why="retried"),
    (X, P): _rule(U, new_attempt=True, why="retried"),
    (F, B): _rule(U, new_attempt=True, why="retried; waits for its dependencies"),
    (X, B): _rule(U, S, new_attempt=True, why="retried, or revived with its dependency"),
}


def check_transition(current: JobStatus, target: JobStatus, initiator: Initiator) -> Rule:
    """The rule allowing ``current → target`` for ``initiator``, or InvalidTransitionError.

    Never answers False: an invalid transition is an error the caller must see.
    """
    rule = TRANSITIONS.get((current, target))
    if rule is None:
        raise InvalidTransitionError(f"A job cannot go from {current} to {target}")
    if initiator not in rule.by:
        raise InvalidTransitionError(f"{current} → {target} is not allowed to {initiator.lower()}s")
    return rule


def seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return max((end - start).total_seconds(), 0.0)


def iso_duration(seconds: float | None) -> str | None:
    """ISO-8601 duration: seconds always present, zero hours/minutes omitted (``PT4M0S``,
    ``P1DT1H0S``, ``PT0S``)."""
    if seconds is None:
        return None
    total_ms = round(seconds * 1000)
    days, rest_ms = divmod(total_ms, 86_400_000)
    hours, rest_ms = divmod(rest_ms, 3_600_000)
    minutes, rest_ms = divmod(rest_ms, 60_000)
    secs = f"{rest_ms / 1000:.3f}".rstrip("0").rstrip(".")
    text = "P" + (f"{days}D" if days else "") + "T"
    text += (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "")
    return text + f"{secs}S"


def check_reason(reason: str | None, path: str = "$.reason") -> list[Violation]:
    return check_text(reason, path, max_length=MAX_REASON, multiline=True)
