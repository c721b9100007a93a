"""The error convention.

* Mutations return union payloads; their error arms implement ``Error``.
* Cross-cutting failures (who you are, what you may do, limits, internal) are
  top-level ``errors[]`` with ``extensions.code``.
* Anything unexpected is masked for the client and logged in full with the
  request id.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import strawberry
from graphql import GraphQLError, GraphQLSyntaxError
from starlette.responses import JSONResponse

from db.errors import InvalidCursorError, is_pool_timeout
from domain.errors import DomainError, SchemaMismatchError, ValidationFailedError
from domain.errors import ErrorCode as DomainErrorCode
from graphql_api.requestid import current_request_id

log = logging.getLogger("batchgraph.errors")

strawberry.enum(
    DomainErrorCode,
    name="ErrorCode",
    description="Stable error codes, in error payloads and in top-level `extensions.code`.",
)

HTTP_STATUS: dict[DomainErrorCode, int] = {
    DomainErrorCode.BAD_REQUEST: 400,
    DomainErrorCode.VALIDATION_FAILED: 400,
    DomainErrorCode.SCHEMA_MISMATCH: 400,
    DomainErrorCode.LIMIT_EXCEEDED: 400,
    DomainErrorCode.UNAUTHENTICATED: 401,
    DomainErrorCode.FORBIDDEN: 403,
    DomainErrorCode.NOT_FOUND: 404,
    DomainErrorCode.CONFLICT: 409,
    DomainErrorCode.INVALID_TRANSITION: 409,
    DomainErrorCode.RATE_LIMITED: 429,
    DomainErrorCode.UNAVAILABLE: 503,
    DomainErrorCode.INTERNAL: 500,
}


def fold_statuses(statuses: Iterable[int]) -> int:
    """One HTTP status for a request that produced several errors (TopChef's rule).

    Equal statuses keep their value; any 5xx makes 500; otherwise two different
    4xx fold to 400. (TopChef tested the 4xx range exclusively; 400–499 inclusive here.)
    """
    found = set(statuses)
    if not found:
        return 200
    if len(found) == 1:
        return found.pop()
    if any(s >= 500 for s in found):
        return 500
    return 400


def status_for(code: str | None) -> int:
    try:
        return HTTP_STATUS[DomainErrorCode(code or "INTERNAL")]
    except ValueError:
        return 500


class ApiError(GraphQLError):
    """A top-level error raised by the API layer itself, with its code."""

    def __init__(self, code: DomainErrorCode, message: str, **extensions: Any) -> None:
        super().__init__(message, extensions={"code": code.value, **extensions})


def top_level(exc: DomainError) -> ApiError:
    return ApiError(exc.code, exc.message)


@strawberry.type(description="One problem in an input document, located by a JSON path.")
class Violation:
    path: str = strawberry.field(description="JSON path into the input, e.g. `$.name`.")
    message: str


@strawberry.interface(description="Every error arm of a mutation payload implements this.")
class Error:
    code: DomainErrorCode
    message: str


@strawberry.type
class NotFound(Error):
    pass


@strawberry.type
class Conflict(Error):
    pass


@strawberry.type
class InvalidTransition(Error):
    pass


@strawberry.type
class ValidationFailed(Error):
    violations: list[Violation]


@strawberry.type
class SchemaMismatch(Error):
    violations: list[Violation]


def violations_of(exc: DomainError) -> list[Violation]:
    if isinstance(exc, ValidationFailedError | SchemaMismatchError):
        return [Violation(path=v.path, message=v.message) for v in exc.violations]
    return []


_ARMS: dict[DomainErrorCode, type[Error]] = {
    DomainErrorCode.NOT_FOUND: NotFound,
    DomainErrorCode.CONFLICT: Conflict,
    DomainErrorCode.INVALID_TRANSITION: InvalidTransition,
    DomainErrorCode.VALIDATION_FAILED: ValidationFailed,
    DomainErrorCode.SCHEMA_MISMATCH: SchemaMismatch,
}


def error_arm(exc: DomainError, allowed: tuple[type[Error], ...]) -> Error:
    """The payload arm for a domain error, or a top-level error if it has none here.

    Cross-cutting errors always go top-level. A domain error whose arm is not in
    this payload's union is a bug, reported as internal (and logged).
    """
    if exc.cross_cutting:
        raise top_level(exc)
    arm = _ARMS.get(exc.code)
    if arm is None or arm not in allowed:
        raise RuntimeError(f"{exc.code} has no arm in this payload: {exc!r}") from exc
    if arm in (ValidationFailed, SchemaMismatch):
        return arm(code=exc.code, message=exc.message, violations=violations_of(exc))  # type: ignore[call-arg,unused-ignore]
    return arm(code=exc.code, message=exc.message)


def classify(error: GraphQLError) -> tuple[DomainErrorCode, bool]:
    """(code, expected) for an error in a result; unexpected ones are masked."""
    original = error.original_error
    if isinstance(original, DomainError):
        return original.code, True
    if isinstance(original, InvalidCursorError):
        return DomainErrorCode.BAD_REQUEST, True
    if original is not None and is_pool_timeout(original):
        return DomainErrorCode.UNAVAILABLE, True
    code = (error.extensions or {}).get("code")
    if code is not None:
        try:
            return DomainErrorCode(code), True
        except ValueError:
            return DomainErrorCode.INTERNAL, False
    if original is None or isinstance(original, GraphQLError):
        syntax = isinstance(error, GraphQLSyntaxError) or isinstance(original, GraphQLSyntaxError)
        if syntax and "Parsing aborted" in error.message:
            # graphql-core's parser limits (tokens, comments, length, nesting) stop it so.
            return DomainErrorCode.LIMIT_EXCEEDED, True
        return DomainErrorCode.BAD_REQUEST, True
    return DomainErrorCode.INTERNAL, False


def present(error: GraphQLError, request_id: str) -> GraphQLError:
    """The client's view of an error: coded, and masked when it was unexpected."""
    code, expected = classify(error)
    if expected:
        message = error.message
        if code is DomainErrorCode.UNAVAILABLE:
            message = "The service is busy; retry shortly"
            log.warning(
                "unavailable in %s (request %s): %r", error.path, request_id, error.original_error
            )
        if isinstance(error.original_error, DomainError):
            message = error.original_error.message
        extensions: dict[str, Any] = {
            **(error.extensions or {}),
            "code": code.value,
            "requestId": request_id,
        }
        return GraphQLError(
            message,
            nodes=error.nodes,
            source=error.source,
            positions=error.positions,
            path=error.path,
            extensions=extensions,
        )
    log.error(
        "unexpected error in %s (request %s)",
        ".".join(map(str, error.path or [])) or "request",
        request_id,
        exc_info=error.original_error,
    )
    return GraphQLError(
        f"Internal server error (request id {request_id})",
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        extensions={"code": DomainErrorCode.INTERNAL.value, "requestId": request_id},
    )


def error_response(
    status: int, code: DomainErrorCode, message: str, *, headers: dict[str, str] | None = None
) -> JSONResponse:
    """A GraphQL-shaped error for requests refused before execution."""
    all_headers = {**(headers or {}), **({"WWW-Authenticate": "Bearer"} if status == 401 else {})}
    extensions = {"code": code.value, "requestId": current_request_id()}
    return JSONResponse(
        {"data": None, "errors": [{"message": message, "extensions": extensions}]},
        status_code=status,
        headers=all_headers,
    )
