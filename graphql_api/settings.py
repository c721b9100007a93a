"""API settings from the environment (documented in the README)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version


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
    # Queries run through the compiled planner; false: through the resolvers (the reference).
    compiled_reads: bool = True
    # One log line per request (uvicorn's access log) costs ~5 % of a small request.
    access_log: bool = False
    # How long a process may trust a token it looked up (a revocation waits at most this).
    token_cache_seconds: float = 5.0

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
            compiled_reads=_bool("BATCHGRAPH_COMPILED_READS", d.compiled_reads),
            access_log=_bool("BATCHGRAPH_ACCESS_LOG", d.access_log),
            token_cache_seconds=min(
                _int("BATCHGRAPH_TOKEN_CACHE_SECONDS", int(d.token_cache_seconds)), 5
            ),
        )
