"""Schema extensions: limits and the error policy, set up once per process."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from graphql import ASTValidationRule, GraphQLError, ValidationContext
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry.extensions import SchemaExtension
from strawberry.extensions.max_aliases import create_validator as alias_validator
from strawberry.extensions.query_depth_limiter import create_validator as depth_validator

from domain.errors import ErrorCode
from graphql_api.errors import present
from graphql_api.settings import Limits


class _CodingContext:
    """A validation context whose reported errors carry ``code = LIMIT_EXCEEDED``.

    Strawberry's limiters report through the context they are given, not
    through ``report_error`` on the rule, so the context is what gets wrapped.
    """

    def __init__(self, inner: ValidationContext) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def report_error(self, error: GraphQLError) -> None:
        error.extensions = {**(error.extensions or {}), "code": ErrorCode.LIMIT_EXCEEDED.value}
        self._inner.report_error(error)


def _coded(rule: type[ASTValidationRule]) -> type[ASTValidationRule]:
    class Coded(rule):  # type: ignore[valid-type,misc]
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(_CodingContext(context))

    Coded.__name__ = f"Coded{rule.__name__}"
    return Coded


def limit_rules(limits: Limits) -> tuple[type[ASTValidationRule], ...]:
    """Built once: a new rule class per request would defeat the validation cache."""
    return (
        _coded(depth_validator(limits.max_depth, None, None)),
        _coded(alias_validator(limits.max_aliases)),
    )


class RequestPolicy(SchemaExtension):
    """Adds the limit rules (and, when switched off, the no-introspection rule), and
    turns every error in the result into its client form: coded, unexpected ones masked."""

    rules: tuple[type[ASTValidationRule], ...] = ()

    def on_operation(self) -> Iterator[None]:
        ctx = self.execution_context
        rules = ctx.validation_rules + self.rules
        context: Any = ctx.context
        if context is not None and not context.settings.introspection:
            rules = (*rules, NoSchemaIntrospectionCustomRule)
        ctx.validation_rules = rules
        yield
        result = ctx.result
        request_id = getattr(context, "request_id", "-")
        if result is not None and result.errors:
            result.errors = [present(error, request_id) for error in result.errors]
        if ctx.pre_execution_errors:
            ctx.pre_execution_errors = [present(e, request_id) for e in ctx.pre_execution_errors]


def request_policy(limits: Limits) -> type[RequestPolicy]:
    rules = limit_rules(limits)
    return type("BoundRequestPolicy", (RequestPolicy,), {"rules": rules})
