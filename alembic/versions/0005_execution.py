"""execution at scale: counter deltas, periodic tasks, task requirements

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _counts() -> list[sa.Column[int]]:
    return [
        sa.Column(name, sa.Integer(), nullable=False, server_default="0")
        for name in ("pending", "blocked", "queued", "running", "completed", "failed", "canceled")
    ]


def _durations() -> list[sa.Column[float]]:
    columns: list[sa.Column[float]] = []
    for prefix in ("run", "job"):
        columns += [
            sa.Column(f"{prefix}_seconds_min", sa.Float(), nullable=True),
            sa.Column(f"{prefix}_seconds_max", sa.Float(), nullable=True),
            sa.Column(f"{prefix}_seconds_sum", sa.Float(), nullable=False, server_default="0"),
            sa.Column(f"{prefix}_seconds_count", sa.Integer(), nullable=False, server_default="0"),
        ]
    return columns


def upgrade() -> None:
    op.create_table(
        "batch_node_delta",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("batch_id", sa.BigInteger(), nullable=False),
        sa.Column("node", sa.String(length=100), nullable=False),
        *_counts(),
        *_durations(),
        sa.Column(
            "at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["batch.id"],
            name=op.f("fk_batch_node_delta_batch_id_batch"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_batch_node_delta")),
    )
    op.create_index(
        "ix_batch_node_delta_batch_id_node", "batch_node_delta", ["batch_id", "node"], unique=False
    )
    op.add_column(
        "batch_node", sa.Column("last_changed_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column(
        "task_type_revision",
        sa.Column(
            "requirements",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default="{}",
            nullable=False,
        ),
    )
    op.create_table(
        "periodic_task",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("interval_seconds", sa.Float(), nullable=False),
        sa.Column("next_run_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_outcome", sa.Text(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("runs", sa.Integer(), nullable=False),
        sa.Column("runner", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_periodic_task")),
    )
    # Dispatch takes a batch's PENDING jobs by priority, then age; claims and the
    # maintenance look at RUNNING jobs by start time.
    op.create_index(
        "ix_job_pending_by_batch",
        "job",
        ["batch_id", sa.text("priority DESC"), "id"],
        unique=False,
        postgresql_where=sa.text("status = 'PENDING'"),
    )
    op.create_index(
        "ix_job_running_started_at",
        "job",
        ["started_at"],
        unique=False,
        postgresql_where=sa.text("status = 'RUNNING'"),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_job_running_started_at",
        table_name="job",
        postgresql_where=sa.text("status = 'RUNNING'"),
    )
    op.drop_index(
        "ix_job_pending_by_batch", table_name="job", postgresql_where=sa.text("status = 'PENDING'")
    )
    op.drop_table("periodic_task")
    op.drop_column("task_type_revision", "requirements")
    op.drop_column("batch_node", "last_changed_at")
    op.drop_index("ix_batch_node_delta_batch_id_node", table_name="batch_node_delta")
    op.drop_table("batch_node_delta")
