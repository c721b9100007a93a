"""The transition table, exhaustively: every (from, to, initiator) is allowed or refused."""

from __future__ import annotations

import itertools

import pytest

from db.enums import JobStatus
from domain.errors import InvalidTransitionError
from domain.jobs.rules import FINAL, TRANSITIONS, Initiator, check_transition, iso_duration

S = JobStatus
ALLOWED = {
    (S.BLOCKED, S.PENDING): {"SYSTEM"},
    (S.PENDING, S.QUEUED): {"SYSTEM"},
    (S.PENDING, S.FAILED): {"SYSTEM"},  # broken configuration, failed at dispatch
    (S.QUEUED, S.RUNNING): {"WORKER"},
    (S.QUEUED, S.COMPLETED): {"WORKER", "SYSTEM"},
    (S.QUEUED, S.FAILED): {"WORKER", "SYSTEM"},
    (S.RUNNING, S.COMPLETED): {"WORKER", "SYSTEM"},
    (S.RUNNING, S.FAILED): {"WORKER", "SYSTEM"},
    (S.RUNNING, S.QUEUED): {"SYSTEM"},
    (S.PENDING, S.CANCELED): {"USER", "SYSTEM"},
    (S.BLOCKED, S.CANCELED): {"USER", "SYSTEM"},
    (S.QUEUED, S.CANCELED): {"USER", "SYSTEM"},
    (S.RUNNING, S.CANCELED): {"USER", "SYSTEM"},
    (S.FAILED, S.PENDING): {"USER"},
    (S.CANCELED, S.PENDING): {"USER"},
    (S.FAILED, S.BLOCKED): {"USER"},
    (S.CANCELED, S.BLOCKED): {"USER", "SYSTEM"},
}


@pytest.mark.parametrize(
    ("current", "target", "initiator"),
    list(itertools.product(JobStatus, JobStatus, Initiator)),
)
def test_every_transition(current: JobStatus, target: JobStatus, initiator: Initiator) -> None:
    allowed = initiator.value in ALLOWED.get((current, target), set())
    if allowed:
        rule = check_transition(current, target, initiator)
        assert rule.why
    else:
        with pytest.raises(InvalidTransitionError):
            check_transition(current, target, initiator)


def test_the_table_is_the_one_documented_here() -> None:
    assert {k: {i.value for i in r.by} for k, r in TRANSITIONS.items()} == ALLOWED


def test_running_only_from_queued_and_completed_is_final() -> None:
    assert [f for (f, t) in TRANSITIONS if t is S.RUNNING] == [S.QUEUED]
    assert not [t for (f, t) in TRANSITIONS if f is S.COMPLETED]
    assert {S.COMPLETED, S.FAILED, S.CANCELED} == FINAL


def test_new_attempts() -> None:
    attempts = {k for k, r in TRANSITIONS.items() if r.new_attempt}
    assert attempts == {
        (S.RUNNING, S.QUEUED),
        (S.FAILED, S.PENDING),
        (S.CANCELED, S.PENDING),
        (S.FAILED, S.BLOCKED),
        (S.CANCELED, S.BLOCKED),
    }


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "PT0S"),
        (240, "PT4M0S"),
        (90061, "P1DT1H1M1S"),
        (86400 + 3600, "P1DT1H0S"),
        (3600, "PT1H0S"),
        (59.5, "PT59.5S"),
        (0.0004, "PT0S"),
        (None, None),
    ],
)
def test_iso_durations(seconds: float | None, text: str | None) -> None:
    assert iso_duration(seconds) == text
