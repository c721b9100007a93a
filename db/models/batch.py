from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Enum,
    ForeignKey,
    Identity,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base
from db.enums import CachePolicy


class Batch(Base):
    """A batch: one recipe (a DAG of task type nodes) run once per input item.

    ``recipe`` holds the normalised nodes with their pinned task type revisions.
    The chain fields link re-processing: every batch points at its root, and at
    the batch it superseded (one-to-one, so a chain is a straight line).
    """

    __tablename__ = "batch"
    __table_args__ = (
        UniqueConstraint("superseded_batch_id"),
        # Exactly one current (not superseded) batch per chain.
        Index(
            "uq_batch_current_per_chain",
            "root_batch_id",
            unique=True,
            postgresql_where=text("NOT is_superseded"),
        ),
        Index("ix_batch_root_batch_id_id", "root_batch_id", "id"),
        Index("ix_batch_workspace_id_created_at", "workspace_id", "created_at"),
        CheckConstraint("priority BETWEEN -1000 AND 1000", name="priority_range"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="RESTRICT"))
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    recipe: Mapped[dict[str, Any]]
    priority: Mapped[int] = mapped_column(default=0)
    max_parallel_jobs: Mapped[int | None]
    cache_policy: Mapped[CachePolicy | None] = mapped_column(
        Enum(CachePolicy, name="cache_policy", create_type=False)
    )
    root_batch_id: Mapped[int | None] = mapped_column(ForeignKey("batch.id", ondelete="RESTRICT"))
    superseded_batch_id: Mapped[int | None] = mapped_column(
        ForeignKey("batch.id", ondelete="RESTRICT")
    )
    is_superseded: Mapped[bool] = mapped_column(default=False)
    superseded_at: Mapped[datetime | None]
    is_creation_done: Mapped[bool] = mapped_column(default=False)
    canceled_at: Mapped[datetime | None]
    # Recipes are created in chunks: positions below the cursor exist.
    creation_cursor: Mapped[int] = mapped_column(default=0)
    recipes_estimated: Mapped[int] = mapped_column(default=0)
    recipes_total: Mapped[int] = mapped_column(default=0)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    last_modified_at: Mapped[datetime] = mapped_column(server_default=func.now())


class BatchNode(Base):
    """Per batch and node (job name): job counts by status and duration aggregates.

    Never written by a job's transaction: transitions append ``BatchNodeDelta`` rows,
    which the ``counters.fold`` periodic task adds in here; readers add the deltas not
    folded yet. Percentiles cannot be folded from deltas: the same task recomputes them
    for the nodes whose COMPLETED jobs changed (db/repositories/counters.py).
    """

    __tablename__ = "batch_node"

    batch_id: Mapped[int] = mapped_column(
        ForeignKey("batch.id", ondelete="CASCADE"), primary_key=True
    )
    node: Mapped[str] = mapped_column(String(100), primary_key=True)
    task_type_revision_id: Mapped[int] = mapped_column(ForeignKey("task_type_revision.id"))
    position: Mapped[int]
    pending: Mapped[int] = mapped_column(default=0)
    blocked: Mapped[int] = mapped_column(default=0)
    queued: Mapped[int] = mapped_column(default=0)
    running: Mapped[int] = mapped_column(default=0)
    completed: Mapped[int] = mapped_column(default=0)
    failed: Mapped[int] = mapped_column(default=0)
    canceled: Mapped[int] = mapped_column(default=0)
    # Over COMPLETED jobs: run = the implementation's own time (job.run_seconds), job =
    # completed - started; a job without the timestamps (or a run time) is left out.
    run_seconds_min: Mapped[float | None]
    run_seconds_max: Mapped[float | None]
    run_seconds_sum: Mapped[float] = mapped_column(default=0.0)
    run_seconds_count: Mapped[int] = mapped_column(default=0)
    job_seconds_min: Mapped[float | None]
    job_seconds_max: Mapped[float | None]
    job_seconds_sum: Mapped[float] = mapped_column(default=0.0)
    job_seconds_count: Mapped[int] = mapped_column(default=0)
    # Recomputed by the fold for nodes whose COMPLETED jobs changed: as of
    # ``percentiles_at``, over ``percentiles_completed`` COMPLETED jobs.
    run_seconds_p50: Mapped[float | None]
    run_seconds_p95: Mapped[float | None]
    job_seconds_p50: Mapped[float | None]
    job_seconds_p95: Mapped[float | None]
    percentiles_completed: Mapped[int] = mapped_column(default=0)
    percentiles_at: Mapped[datetime | None]
    # The newest change folded into this row (see BatchNodeDelta).
    last_changed_at: Mapped[datetime | None]


class BatchNodeDelta(Base):
    """A change to a batch node's counters, appended by the transaction that moved jobs.

    Job transitions never update ``batch_node``: one row shared by every job of a
    node would serialise them all. They append a delta instead (no lock shared with
    anyone); a periodic task folds deltas into ``batch_node`` in the background, and
    readers add the deltas not folded yet, so counters are exact in every snapshot.
    """

    __tablename__ = "batch_node_delta"
    __table_args__ = (Index("ix_batch_node_delta_batch_id_node", "batch_id", "node"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("batch.id", ondelete="CASCADE"))
    node: Mapped[str] = mapped_column(String(100))
    pending: Mapped[int] = mapped_column(default=0)
    blocked: Mapped[int] = mapped_column(default=0)
    queued: Mapped[int] = mapped_column(default=0)
    running: Mapped[int] = mapped_column(default=0)
    completed: Mapped[int] = mapped_column(default=0)
    failed: Mapped[int] = mapped_column(default=0)
    canceled: Mapped[int] = mapped_column(default=0)
    run_seconds_min: Mapped[float | None]
    run_seconds_max: Mapped[float | None]
    run_seconds_sum: Mapped[float] = mapped_column(default=0.0)
    run_seconds_count: Mapped[int] = mapped_column(default=0)
    job_seconds_min: Mapped[float | None]
    job_seconds_max: Mapped[float | None]
    job_seconds_sum: Mapped[float] = mapped_column(default=0.0)
    job_seconds_count: Mapped[int] = mapped_column(default=0)
    at: Mapped[datetime] = mapped_column(server_default=func.now())


class BatchItem(Base):
    """An input item, stored with the batch; recipes are made from these in chunks."""

    __tablename__ = "batch_item"

    batch_id: Mapped[int] = mapped_column(
        ForeignKey("batch.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    value: Mapped[dict[str, Any]]
    # For re-processing: the recipe of the previous batch this one re-runs, and the
    # nodes to run again (the others keep their previous results).
    previous_recipe_id: Mapped[int | None] = mapped_column(BigInteger)
    nodes: Mapped[list[str] | None] = mapped_column(ARRAY(String(100)))


class Recipe(Base):
    __tablename__ = "recipe"
    __table_args__ = (
        UniqueConstraint("batch_id", "position"),
        # Completed recipes are counted, not kept in a counter on the hot batch row
        # (which creation and cancellation lock): this index makes the count cheap.
        Index(
            "ix_recipe_completed",
            "batch_id",
            postgresql_where=text("jobs_completed = job_count"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("batch.id", ondelete="CASCADE"))
    position: Mapped[int]
    item: Mapped[dict[str, Any]]
    previous_recipe_id: Mapped[int | None] = mapped_column(
        ForeignKey("recipe.id", ondelete="SET NULL")
    )
    job_count: Mapped[int] = mapped_column(default=0)
    jobs_completed: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
