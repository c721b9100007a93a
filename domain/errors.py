"""Domain errors: each carries a stable code, never an HTTP status."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar


class ErrorCode(StrEnum):
    NOT_FOUND = "NOT_FOUND"
    VALIDATION_FAILED = "VALIDATION_FAILED"
    FORBIDDEN = "FORBIDDEN"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    CONFLICT = "CONFLICT"
    INVALID_TRANSITION = "INVALID_TRANSITION"
    SCHEMA_MISMATCH = "SCHEMA_MISMATCH"
    LIMIT_EXCEEDED = "LIMIT_EXCEEDED"
    BAD_REQUEST = "BAD_REQUEST"
    RATE_LIMITED = "RATE_LIMITED"
    UNAVAILABLE = "UNAVAILABLE"
    INTERNAL = "INTERNAL"


@dataclass(frozen=True, slots=True)
class Violation:
    """One problem in an input document; ``path`` is a JSON path such as ``$.items[2].name``."""

    path: str
    message: str


class DomainError(Exception):
    code: ClassVar[ErrorCode]
    # Cross-cutting failures (who you are, what you may do, how much you may ask)
    # are reported beside the data rather than as a mutation's result.
    cross_cutting: ClassVar[bool] = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFoundError(DomainError):
    code = ErrorCode.NOT_FOUND


class ValidationFailedError(DomainError):
    code = ErrorCode.VALIDATION_FAILED

    def __init__(self, message: str, violations: Sequence[Violation]) -> None:
        super().__init__(message)
        self.violations = list(violations)


class ConflictError(DomainError):
    code = ErrorCode.CONFLICT


class InvalidTransitionError(DomainError):
    code = ErrorCode.INVALID_TRANSITION


class SchemaMismatchError(DomainError):
    code = ErrorCode.SCHEMA_MISMATCH

    def __init__(self, message: str, violations: Sequence[Violation]) -> None:
        super().__init__(message)
        self.violations = list(violations)


class UnauthenticatedError(DomainError):
    code = ErrorCode.UNAUTHENTICATED
    cross_cutting = True


class ForbiddenError(DomainError):
    code = ErrorCode.FORBIDDEN
    cross_cutting = True


class LimitExceededError(DomainError):
    code = ErrorCode.LIMIT_EXCEEDED
    cross_cutting = True


class RateLimitedError(DomainError):
    """The caller spent its budget of points for now."""

    code = ErrorCode.RATE_LIMITED
    cross_cutting = True


class UnavailableError(DomainError):
    """The service cannot take the request now (e.g. no database connection in time)."""

    code = ErrorCode.UNAVAILABLE
    cross_cutting = True


def raise_if_invalid(message: str, violations: Iterable[Violation]) -> None:
    found = list(violations)
    if found:
        raise ValidationFailedError(message, found)


class BadRequestError(DomainError):
    """A request that cannot be used as sent (e.g. a byte range that does not fit)."""

    code = ErrorCode.BAD_REQUEST
