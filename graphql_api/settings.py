"""The API's typed views of the settings (``db.config.Settings``, read from the environment)."""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from db.config import Settings, settings


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
    # JSON values in one operation's variables when it comes without a token (a
    # public workspace's validateBatch needs no writer, and its work grows with them).
    max_anonymous_input_values: int = 10_000

    @classmethod
    def of(cls, found: Settings) -> Limits:
        return cls(
            max_depth=found.max_depth,
            max_aliases=found.max_aliases,
            max_tokens=found.max_tokens,
            max_batch_operations=found.max_batch_operations,
            max_body_bytes=found.max_body_bytes,
            max_query_chars=found.max_query_chars,
            max_cost=found.max_cost,
            max_duplicate_fields=found.max_duplicate_fields,
            max_fragment_spreads=found.max_fragment_spreads,
            max_json_depth=found.max_json_depth,
            max_subscriptions_per_connection=found.max_subscriptions_per_connection,
            max_anonymous_input_values=found.max_anonymous_input_values,
        )

    @classmethod
    def from_env(cls) -> Limits:
        return cls.of(settings())


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
    # API processes run the periodic tasks too (one process at a time runs each), so a
    # deployment with pull workers only still has its maintenance.
    periodic: bool = True
    requeue_after_seconds: float = 60.0
    # Points per minute per token (per client address when anonymous); an operation
    # costs max(1, ceil(cost / 100)) + input values // 200 points. Per process.
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
    # batchComparison's defaults when a request names no threshold / minSeconds.
    comparison_threshold: float = 0.2
    comparison_min_seconds: float = 0.05
    # Queries run through the compiled planner; false: through the resolvers (the reference).
    compiled_reads: bool = True
    # One log line per request (uvicorn's access log) costs ~5 % of a small request.
    access_log: bool = False
    # The default local file store's folder, and where partial uploads are staged.
    files_dir: Path = field(default_factory=lambda: settings().files_path())

    def pool_options(self) -> dict[str, Any]:
        """Keyword arguments for db.session.connect."""
        return {
            "pool_size": self.db_pool_size,
            "max_overflow": self.db_max_overflow,
            "pool_timeout": self.db_pool_timeout_seconds,
        }

    @classmethod
    def of(cls, found: Settings) -> ApiSettings:
        return cls(
            host=found.host,
            port=found.port,
            cors_origins=found.cors_origins,
            introspection=found.introspection,
            limits=Limits.of(found),
            documentation_url=found.docs_url,
            maintainer=found.maintainer,
            source_url=found.source_url,
            periodic=found.periodic,
            requeue_after_seconds=found.requeue_after_seconds,
            rate_limit_enabled=found.rate_limit_enabled,
            rate_limit_points=found.rate_limit_points,
            db_pool_size=found.db_pool_size,
            db_max_overflow=found.db_max_overflow,
            db_pool_timeout_seconds=found.db_pool_timeout_seconds,
            drain_seconds=found.drain_seconds,
            shutdown_seconds=found.shutdown_seconds,
            token_recheck_seconds=found.token_recheck_seconds,
            comparison_threshold=found.comparison_threshold,
            comparison_min_seconds=found.comparison_min_seconds,
            compiled_reads=found.compiled_reads,
            access_log=found.access_log,
            files_dir=found.files_path(),
        )

    @classmethod
    def from_env(cls) -> ApiSettings:
        return cls.of(settings())
