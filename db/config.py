"""Every setting batchgraph reads from the environment, in one typed object.

It sits in the lowest layer so that the API, the workers, the launcher and alembic
read the same values the same way. The README's "Configuration" table lists every
variable; a test keeps the two in step.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Annotated, Literal

import platformdirs
from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PREFIX = "BATCHGRAPH_"


def project_root() -> Path | None:
    """The source checkout this code runs from (``make run``'s folder), if it is one."""
    root = Path(__file__).resolve().parents[1]
    if (root / "pyproject.toml").is_file() and (root / "alembic.ini").is_file():
        return root
    return None


def default_home() -> Path:
    """Where the embedded servers keep their data when BATCHGRAPH_HOME is unset.

    The same folder whatever the current directory: ``.batchgraph`` in the project
    folder for a source checkout, else the user's data folder. So a command run from
    anywhere finds the database the server uses.
    """
    root = project_root()
    if root is not None:
        return root / ".batchgraph"
    return Path(platformdirs.user_data_dir("batchgraph"))


class Settings(BaseSettings):
    """Read once per process (``settings()``); tests build their own instances."""

    model_config = SettingsConfigDict(
        env_prefix=PREFIX,
        env_ignore_empty=True,  # VAR= means "the default", as before
        extra="ignore",
        frozen=True,
        validate_by_name=True,
    )

    # Infrastructure
    database_url: str | None = Field(
        default=None,
        validation_alias="DATABASE_URL",
        description="PostgreSQL; unset: an embedded PostgreSQL in BATCHGRAPH_HOME",
    )
    broker_url: str | None = Field(
        default=None,
        validation_alias="BROKER_URL",
        description="amqp:// (RabbitMQ) or redis://; unset: an embedded Redis in BATCHGRAPH_HOME",
    )
    broker_namespace: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="prefix of the broker's Redis keys and RabbitMQ queue; unset: Dramatiq's"
        " (`dramatiq:` keys, queue `default`)",
    )
    home: Path = Field(
        default_factory=default_home,
        description="data folder of the embedded servers, and the running server's address",
    )

    files_dir: Path | None = Field(
        default=None,
        description="the default file store's folder (files laid out by hash) and where partial"
        " uploads are staged; unset: BATCHGRAPH_HOME/files",
    )

    # The API server
    host: str = Field(default="127.0.0.1", description="where `serve` listens")
    port: int = Field(default=8000, ge=0, le=65535, description="where `serve` listens")
    cors_origins: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(), description="comma-separated origins allowed by CORS and for websockets"
    )
    introspection: bool = Field(default=True, description="false refuses introspection")
    max_depth: int = Field(default=12, ge=1, description="query depth")
    max_aliases: int = Field(default=30, ge=1, description="aliases per document")
    max_tokens: int = Field(default=5_000, ge=1, description="lexical tokens per document")
    max_batch_operations: int = Field(
        default=10, ge=1, description="operations in one batched (JSON array) request"
    )
    # Room for a batch of 100,000 input items of ~150 bytes each.
    max_body_bytes: int = Field(default=16 * 1_048_576, ge=1024, description="request body")
    max_query_chars: int = Field(
        default=100_000, ge=100, description="characters of the document (comments included)"
    )
    max_cost: int = Field(
        default=20_000,
        ge=1,
        description="objects an answer may hold, computed before execution (the cost rule)",
    )
    max_duplicate_fields: int = Field(
        default=20, ge=1, description="times one response key is selected in one selection set"
    )
    max_fragment_spreads: int = Field(
        default=30, ge=1, description="distinct fragments spread into one selection set"
    )
    max_json_depth: int = Field(
        default=64, ge=2, description="nesting of JSON values (objects and arrays) in variables"
    )
    max_subscriptions_per_connection: int = Field(
        default=100, ge=1, description="open operations on one websocket connection"
    )
    max_anonymous_input_values: int = Field(
        default=10_000,
        ge=0,
        description="JSON values in the variables of one operation without a token",
    )
    rate_limit_enabled: bool = Field(
        default=True, description="false switches the per-token points budget off"
    )
    rate_limit_points: int = Field(
        default=10_000,
        ge=1,
        description="points per minute per token (per client address when anonymous); an"
        " operation costs max(1, ceil(cost / 100)) + input values // 200; per process",
    )
    db_pool_size: int = Field(default=10, ge=1, description="database connections per process")
    db_max_overflow: int = Field(
        default=10, ge=0, description="extra connections a process may open under load"
    )
    db_pool_timeout_seconds: float = Field(
        default=2.0,
        gt=0,
        description="how long a request waits for a connection before 503 UNAVAILABLE",
    )
    drain_seconds: float = Field(
        default=5.0, ge=0, description="SIGTERM: /readyz answers 503 this long while serving"
    )
    shutdown_seconds: float = Field(
        default=10.0,
        gt=0,
        description="then in-flight requests get this long; what still runs is abandoned",
    )
    token_recheck_seconds: float = Field(
        default=5.0,
        gt=0,
        le=5,
        description="an open subscription re-checks its token at most this often",
    )
    compiled_reads: bool = Field(
        default=True,
        description="queries run through the compiled planner (one SQL statement);"
        " false: through the resolvers, the reference it is tested against",
    )
    docs_url: str = Field(
        default="https://example.invalid/batchgraph/docs", description="shown by apiMetadata"
    )
    maintainer: str = Field(default="batchgraph maintainers", description="shown by apiMetadata")
    source_url: str = Field(
        default="https://example.invalid/batchgraph", description="shown by apiMetadata"
    )

    # Metrics
    comparison_threshold: float = Field(
        default=0.2,
        ge=0,
        le=10,
        description="batchComparison flags a failure rate or duration that got worse (or"
        " better) by more than this fraction (0.2 = 20 %) when a request names none",
    )
    comparison_min_seconds: float = Field(
        default=0.05,
        ge=0,
        le=86_400,
        description="a duration must also move by at least this many seconds to be flagged",
    )

    # Console
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="API and worker log level"
    )
    log_format: Literal["text", "json"] = Field(
        default="text", description="json: one JSON object per line, for log collectors"
    )
    access_log: bool = Field(default=False, description="true: one line per HTTP request")

    periodic: bool = Field(
        default=True,
        description="API processes run the periodic tasks too (maintenance, counter folding;"
        " one process at a time runs each): false leaves them to fleet workers",
    )

    # Workers
    requeue_after_seconds: float = Field(
        default=60.0,
        gt=0,
        description="a queued job (or a batch creation) whose message got lost is sent again"
        " after this",
    )

    # The command line's client
    url: str | None = Field(
        default=None,
        description="the API the CLI talks to; unset: the server running from BATCHGRAPH_HOME,"
        " else http://127.0.0.1:8000/graphql",
    )
    token: SecretStr | None = Field(default=None, description="the CLI's token")

    def files_path(self) -> Path:
        """The default local file store's folder."""
        return (self.files_dir or self.home / "files").expanduser().resolve()

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(item.strip() for item in value.split(",") if item.strip())
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("home", mode="after")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()


def env_name(field: str) -> str:
    """The environment variable of a settings field."""
    info = Settings.model_fields[field]
    alias = info.validation_alias
    return alias if isinstance(alias, str) else PREFIX + field.upper()


class SettingsError(ValueError):
    """A variable holds a value batchgraph cannot use; the message names it."""


def load_settings() -> Settings:
    """The environment's settings, or SettingsError naming each bad variable."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else "?"
            name = env_name(field) if field in Settings.model_fields else field
            problems.append(f"{name}: {error['msg']}")
        raise SettingsError("; ".join(problems)) from None


@cache
def settings() -> Settings:
    """This process's settings, read once."""
    return load_settings()


def asyncpg_url(url: str) -> str:
    """Accept plain ``postgresql://`` URLs too; SQLAlchemy needs the asyncpg driver named."""
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    raise ValueError("DATABASE_URL must be a postgresql:// URL")
