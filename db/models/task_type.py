from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Enum,
    ForeignKey,
    Identity,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base
from db.enums import CachePolicy


class TaskType(Base):
    """A "service": what stays the same across revisions, plus its availability clock."""

    __tablename__ = "task_type"
    __table_args__ = (
        UniqueConstraint("workspace_id", "name"),
        CheckConstraint("check_in_timeout_seconds > 0", name="check_in_timeout_positive"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="RESTRICT"))
    name: Mapped[str] = mapped_column(String(100))
    available: Mapped[bool] = mapped_column(default=False, server_default="false")
    check_in_timeout_seconds: Mapped[int] = mapped_column(default=30, server_default="30")
    last_check_in_at: Mapped[datetime | None]
    # The newest revision number; bumped with UPDATE ... RETURNING so that two
    # concurrent new revisions serialise on the row instead of colliding.
    latest_revision: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class TaskTypeRevision(Base):
    """An immutable revision: schemas and execution settings never change in place."""

    __tablename__ = "task_type_revision"
    __table_args__ = (
        UniqueConstraint("task_type_id", "revision"),
        CheckConstraint("max_attempts BETWEEN 1 AND 100", name="max_attempts_range"),
        CheckConstraint("timeout_seconds IS NULL OR timeout_seconds > 0", name="timeout_positive"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    task_type_id: Mapped[int] = mapped_column(ForeignKey("task_type.id", ondelete="CASCADE"))
    revision: Mapped[int]
    description: Mapped[str] = mapped_column(Text, default="")
    parameters_schema: Mapped[dict[str, Any]]
    result_schema: Mapped[dict[str, Any]]
    implementation: Mapped[str] = mapped_column(String(200))
    timeout_seconds: Mapped[int | None]
    max_attempts: Mapped[int] = mapped_column(default=1)
    cache_policy: Mapped[CachePolicy] = mapped_column(Enum(CachePolicy, name="cache_policy"))
    # What a worker must offer to run these jobs: every key/value here must appear in
    # the worker's metadata (JSONB containment), e.g. {"arch": "aarch64"}.
    requirements: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
