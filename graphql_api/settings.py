"""API settings from the environment (documented in the README)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import Any


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be a whole number, not {raw!r}") from exc


def _bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"{name} must be true or false, not {raw!r}")


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be a number, not {raw!r}") from exc


def _list(name: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in os.environ.get(name, "").split(",") if item.strip())


def package_version() -> str:
    try:
        return version("batchgraph")
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0+unknown"


@dataclass(frozen=True, slots=True)
class Limits:
    """Request limits. Part of the schema's identity: the schema is built once per process."""

    max_depth: int = 12
    max_aliases: int = 30
    max_tokens: int = 5_000
    max_batch_operations: int = 10
    # Room for a batch of 100,000 input items of ~150 bytes each.
    max_body_bytes: int = 16 * 1_048_576
    default_page_size: int = 20
    max_page_size: int = 100
    # The document itself (query text): comments and string literals count too.
    max_query_chars: int = 100_000
    # Objects an answer may hold, computed before execution (see graphql_api/cost.py).
    max_cost: int = 20_000
    # One response key selected this many times in one selection set (fragments
    # included); overlapping-fields validation is quadratic in it.
    max_duplicate_fields: int = 20
    # Distinct fragments spread into one selection set (validation compares them pairwise).
    max_fragment_spreads: int = 30
    # Nesting of JSON values in variables (objects and arrays).
    max_json_depth: int = 64
    # Open operations on one graphql-transport-ws connection.
    max_subscriptions_per_connection: int = 100

    @classmethod
    def from_env(cls) -> Limits:
        d = cls()
        return cls(
            max_depth=_int("BATCHGRAPH_MAX_DEPTH", d.max_depth),
            max_aliases=_int("BATCHGRAPH_MAX_ALIASES", d.max_aliases),
            max_tokens=_int("BATCHGRAPH_MAX_TOKENS", d.max_tokens),
            max_batch_operations=_int("BATCHGRAPH_MAX_BATCH_OPERATIONS", d.max_batch_operations),
            max_body_bytes=_int("BATCHGRAPH_MAX_BODY_BYTES", d.max_body_bytes),
            default_page_size=d.default_page_size,
            max_page_size=d.max_page_size,
            max_query_chars=_int("BATCHGRAPH_MAX_QUERY_CHARS", d.max_query_chars),
            max_cost=_int("BATCHGRAPH_MAX_COST", d.max_cost),
            max_duplicate_fields=_int("BATCHGRAPH_MAX_DUPLICATE_FIELDS", d.max_duplicate_fields),
            max_fragment_spreads=_int("BATCHGRAPH_MAX_FRAGMENT_SPREADS", d.max_fragment_spreads),
            max_json_depth=_int("BATCHGRAPH_MAX_JSON_DEPTH", d.max_json_depth),
            max_subscriptions_per_connection=_int(
                "BATCHGRAPH_MAX_SUBSCRIPTIONS_PER_CONNECTION", d.max_subscriptions_per_connection
            ),
        )


@dataclass(frozen=True, slots=True)
class ApiSettings:
    host: str = "127.0.0.1"
    port: int = 8000
    cors_origins: tuple[str, ...] = ()
    introspection: bool = True
    limits: Limits = field(default_factory=Limits)
    documentation_url: str = "https://example.invalid/batchgraph/docs"
    maintainer: str = "batchgraph maintainers"
    source_url: str = "https://example.invalid/batchgraph"
    # Points per minute per token (per client address when anonymous); a request
    # costs max(1, ceil(cost / 100)) points. Per process.
    rate_limit_enabled: bool = True
    rate_limit_points: int = 10_000
    # Database pool of this process, and how long a request waits for a connection
    # before it is answered 503 UNAVAILABLE.
    db_pool_size: int = 10
    db_max_overflow: int = 10
    db_pool_timeout_seconds: float = 2.0
    # SIGTERM: /readyz answers 503 for drain_seconds while requests are still served;
    # then the server stops accepting, waits for in-flight requests and closes
    # websockets; whatever still runs after shutdown_seconds more is abandoned.
    drain_seconds: float = 5.0
    shutdown_seconds: float = 10.0
    # An open subscription re-checks its token at most this often (per process).
    token_recheck_seconds: float = 5.0

    def pool_options(self) -> dict[str, Any]:
        """Keyword arguments for db.session.connect."""
        return {
            "pool_size": self.db_pool_size,
            "max_overflow": self.db_max_overflow,
            "pool_timeout": self.db_pool_timeout_seconds,
        }

    @classmethod
    def from_env(cls) -> ApiSettings:
        d = cls()
        return cls(
            host=os.environ.get("BATCHGRAPH_HOST") or d.host,
            port=_int("BATCHGRAPH_PORT", d.port),
            cors_origins=_list("BATCHGRAPH_CORS_ORIGINS"),
            introspection=_bool("BATCHGRAPH_INTROSPECTION", d.introspection),
            limits=Limits.from_env(),
            documentation_url=os.environ.get("BATCHGRAPH_DOCS_URL") or d.documentation_url,
            maintainer=os.environ.get("BATCHGRAPH_MAINTAINER") or d.maintainer,
            source_url=os.environ.get("BATCHGRAPH_SOURCE_URL") or d.source_url,
            rate_limit_enabled=_bool("BATCHGRAPH_RATE_LIMIT_ENABLED", d.rate_limit_enabled),
            rate_limit_points=_int("BATCHGRAPH_RATE_LIMIT_POINTS", d.rate_limit_points),
            db_pool_size=_int("BATCHGRAPH_DB_POOL_SIZE", d.db_pool_size),
            db_max_overflow=_int("BATCHGRAPH_DB_MAX_OVERFLOW", d.db_max_overflow),
            db_pool_timeout_seconds=_float(
                "BATCHGRAPH_DB_POOL_TIMEOUT_SECONDS", d.db_pool_timeout_seconds
            ),
            drain_seconds=_float("BATCHGRAPH_DRAIN_SECONDS", d.drain_seconds),
            shutdown_seconds=_float("BATCHGRAPH_SHUTDOWN_SECONDS", d.shutdown_seconds),
            token_recheck_seconds=_float(
                "BATCHGRAPH_TOKEN_RECHECK_SECONDS", d.token_recheck_seconds
            ),
        )
