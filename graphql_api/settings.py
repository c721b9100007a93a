"""The API's typed views of the settings (``db.config.Settings``, read from the environment)."""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version

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

    @classmethod
    def of(cls, found: Settings) -> Limits:
        return cls(
            max_depth=found.max_depth,
            max_aliases=found.max_aliases,
            max_tokens=found.max_tokens,
            max_batch_operations=found.max_batch_operations,
            max_body_bytes=found.max_body_bytes,
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
        )

    @classmethod
    def from_env(cls) -> ApiSettings:
        return cls.of(settings())
