from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Enum,
    ForeignKey,
    Identity,
    Index,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base
from db.enums import JobStatus

JOB_STATUS = Enum(JobStatus, name="job_status")


class Job(Base):
    """A work request: one node of one recipe. Only domain.jobs.moves sets ``status``."""

    __tablename__ = "job"
    __table_args__ = (
        UniqueConstraint("recipe_id", "node"),
        Index("ix_job_batch_id_id", "batch_id", "id"),
        Index("ix_job_batch_id_status", "batch_id", "status"),
        Index(
            "ix_job_dispatchable",
            "priority",
            "id",
            postgresql_where=text("status IN ('PENDING', 'QUEUED')"),
        ),
        Index(
            "ix_job_pending_by_batch",
            "batch_id",
            text("priority DESC"),
            "id",
            postgresql_where=text("status = 'PENDING'"),
        ),
        Index(
            "ix_job_running_started_at", "started_at", postgresql_where=text("status = 'RUNNING'")
        ),
        # The fold recomputes a node's percentiles over its COMPLETED jobs.
        Index(
            "ix_job_completed_by_node",
            "batch_id",
            "node",
            postgresql_where=text("status = 'COMPLETED'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="RESTRICT"))
    batch_id: Mapped[int] = mapped_column(ForeignKey("batch.id", ondelete="CASCADE"))
    recipe_id: Mapped[int] = mapped_column(ForeignKey("recipe.id", ondelete="CASCADE"))
    node: Mapped[str] = mapped_column(String(100))
    task_type_revision_id: Mapped[int] = mapped_column(ForeignKey("task_type_revision.id"))
    parameters: Mapped[dict[str, Any]]
    status: Mapped[JobStatus] = mapped_column(JOB_STATUS)
    priority: Mapped[int] = mapped_column(default=0)
    attempt: Mapped[int] = mapped_column(default=1)
    max_attempts: Mapped[int] = mapped_column(default=1)
    worker: Mapped[str | None] = mapped_column(String(200))
    result: Mapped[dict[str, Any] | None]
    error_code: Mapped[str | None] = mapped_column(String(100))
    error_message: Mapped[str | None] = mapped_column(Text)
    error_category: Mapped[str | None] = mapped_column(String(50))
    # Canceled because a dependency failed or was canceled: a retry of that
    # dependency revives this job.
    canceled_by_dependency: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    queued_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    # COMPLETED jobs: the implementation's own time, as the fleet measured it around the
    # call or a pull worker reported it (else completed - started; never more than that).
    run_seconds: Mapped[float | None]
    last_modified_at: Mapped[datetime] = mapped_column(server_default=func.now())


class JobDependency(Base):
    """``job`` waits for ``depends_on`` (both in the same recipe)."""

    __tablename__ = "job_dependency"
    __table_args__ = (Index("ix_job_dependency_depends_on_id", "depends_on_id"),)

    job_id: Mapped[int] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"), primary_key=True)
    depends_on_id: Mapped[int] = mapped_column(
        ForeignKey("job.id", ondelete="CASCADE"), primary_key=True
    )


class JobEvent(Base):
    """One transition: the job's history and the replay log for subscriptions."""

    __tablename__ = "job_event"
    __table_args__ = (
        Index("ix_job_event_job_id_id", "job_id", "id"),
        Index("ix_job_event_batch_id_id", "batch_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"))
    # The event's job's batch, copied by the move path that writes both in one
    # statement; no foreign key of its own (job_id's covers it; see migration 0009).
    batch_id: Mapped[int] = mapped_column(BigInteger)
    from_status: Mapped[JobStatus | None] = mapped_column(JOB_STATUS)
    to_status: Mapped[JobStatus] = mapped_column(JOB_STATUS)
    attempt: Mapped[int]
    worker: Mapped[str | None] = mapped_column(String(200))
    reason: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(server_default=func.now())
