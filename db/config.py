"""Where the shared infrastructure lives: read from the environment by every process.

It sits in the lowest layer so that the API, the workers and alembic read the same
values the same way.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class InfraConfig:
    database_url: str | None
    broker_url: str | None
    home: Path

    @classmethod
    def from_env(cls) -> InfraConfig:
        return cls(
            database_url=os.environ.get("DATABASE_URL") or None,
            broker_url=os.environ.get("BROKER_URL") or None,
            home=Path(os.environ.get("BATCHGRAPH_HOME") or ".batchgraph").resolve(),
        )


def asyncpg_url(url: str) -> str:
    """Accept plain ``postgresql://`` URLs too; SQLAlchemy needs the asyncpg driver named."""
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    raise ValueError("DATABASE_URL must be a postgresql:// URL")
