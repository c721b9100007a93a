"""batches and jobs: batches with their nodes, items and recipes; jobs, dependencies, events

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


JOB_STATUS = postgresql.ENUM(name="job_status", create_type=False)


def upgrade() -> None:
    postgresql.ENUM(
        "PENDING",
        "BLOCKED",
        "QUEUED",
        "RUNNING",
        "COMPLETED",
        "FAILED",
        "CANCELED",
        name="job_status",
    ).create(op.get_bind())
    op.create_table(
        "batch",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("workspace_id", sa.BigInteger(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("recipe", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("max_parallel_jobs", sa.Integer(), nullable=True),
        sa.Column(
            "cache_policy", postgresql.ENUM(name="cache_policy", create_type=False), nullable=True
        ),
        sa.Column("root_batch_id", sa.BigInteger(), nullable=True),
        sa.Column("superseded_batch_id", sa.BigInteger(), nullable=True),
        sa.Column("is_superseded", sa.Boolean(), nullable=False),
        sa.Column("superseded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("is_creation_done", sa.Boolean(), nullable=False),
        sa.Column("canceled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("creation_cursor", sa.Integer(), nullable=False),
        sa.Column("recipes_estimated", sa.Integer(), nullable=False),
        sa.Column("recipes_total", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "last_modified_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("priority BETWEEN -1000 AND 1000", name=op.f("ck_batch_priority_range")),
        sa.ForeignKeyConstraint(
            ["root_batch_id"],
            ["batch.id"],
            name=op.f("fk_batch_root_batch_id_batch"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["superseded_batch_id"],
            ["batch.id"],
            name=op.f("fk_batch_superseded_batch_id_batch"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspace.id"],
            name=op.f("fk_batch_workspace_id_workspace"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_batch")),
        sa.UniqueConstraint("superseded_batch_id", name=op.f("uq_batch_superseded_batch_id")),
    )
    op.create_index("ix_batch_root_batch_id_id", "batch", ["root_batch_id", "id"], unique=False)
    op.create_index(
        "uq_batch_current_per_chain",
        "batch",
        ["root_batch_id"],
        unique=True,
        postgresql_where=sa.text("NOT is_superseded"),
    )
    op.create_index(
        "ix_batch_workspace_id_created_at", "batch", ["workspace_id", "created_at"], unique=False
    )
    op.create_table(
        "batch_item",
        sa.Column("batch_id", sa.BigInteger(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("value", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("previous_recipe_id", sa.BigInteger(), nullable=True),
        sa.Column("nodes", postgresql.ARRAY(sa.String(length=100)), nullable=True),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["batch.id"],
            name=op.f("fk_batch_item_batch_id_batch"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("batch_id", "position", name=op.f("pk_batch_item")),
    )
    op.create_table(
        "recipe",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("batch_id", sa.BigInteger(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("item", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("previous_recipe_id", sa.BigInteger(), nullable=True),
        sa.Column("job_count", sa.Integer(), nullable=False),
        sa.Column("jobs_completed", sa.Integer(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["batch.id"], name=op.f("fk_recipe_batch_id_batch"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["previous_recipe_id"],
            ["recipe.id"],
            name=op.f("fk_recipe_previous_recipe_id_recipe"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recipe")),
        sa.UniqueConstraint("batch_id", "position", name=op.f("uq_recipe_batch_id_position")),
    )
    op.create_table(
        "batch_node",
        sa.Column("batch_id", sa.BigInteger(), nullable=False),
        sa.Column("node", sa.String(length=100), nullable=False),
        sa.Column("task_type_revision_id", sa.BigInteger(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("pending", sa.Integer(), nullable=False),
        sa.Column("blocked", sa.Integer(), nullable=False),
        sa.Column("queued", sa.Integer(), nullable=False),
        sa.Column("running", sa.Integer(), nullable=False),
        sa.Column("completed", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("canceled", sa.Integer(), nullable=False),
        sa.Column("run_seconds_min", sa.Double(), nullable=True),
        sa.Column("run_seconds_max", sa.Double(), nullable=True),
        sa.Column("run_seconds_sum", sa.Double(), nullable=False),
        sa.Column("run_seconds_count", sa.Integer(), nullable=False),
        sa.Column("job_seconds_min", sa.Double(), nullable=True),
        sa.Column("job_seconds_max", sa.Double(), nullable=True),
        sa.Column("job_seconds_sum", sa.Double(), nullable=False),
        sa.Column("job_seconds_count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["batch.id"],
            name=op.f("fk_batch_node_batch_id_batch"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["task_type_revision_id"],
            ["task_type_revision.id"],
            name=op.f("fk_batch_node_task_type_revision_id_task_type_revision"),
        ),
        sa.PrimaryKeyConstraint("batch_id", "node", name=op.f("pk_batch_node")),
    )
    op.create_table(
        "job",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("workspace_id", sa.BigInteger(), nullable=False),
        sa.Column("batch_id", sa.BigInteger(), nullable=False),
        sa.Column("recipe_id", sa.BigInteger(), nullable=False),
        sa.Column("node", sa.String(length=100), nullable=False),
        sa.Column("task_type_revision_id", sa.BigInteger(), nullable=False),
        sa.Column("parameters", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("status", JOB_STATUS, nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("worker", sa.String(length=200), nullable=True),
        sa.Column("result", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("error_code", sa.String(length=100), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("error_category", sa.String(length=50), nullable=True),
        sa.Column("canceled_by_dependency", sa.Boolean(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("queued_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "last_modified_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["batch.id"], name=op.f("fk_job_batch_id_batch"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["recipe_id"], ["recipe.id"], name=op.f("fk_job_recipe_id_recipe"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["task_type_revision_id"],
            ["task_type_revision.id"],
            name=op.f("fk_job_task_type_revision_id_task_type_revision"),
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspace.id"],
            name=op.f("fk_job_workspace_id_workspace"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job")),
        sa.UniqueConstraint("recipe_id", "node", name=op.f("uq_job_recipe_id_node")),
    )
    op.create_index(
        "ix_recipe_completed",
        "recipe",
        ["batch_id"],
        unique=False,
        postgresql_where=sa.text("jobs_completed = job_count"),
    )
    op.create_index("ix_job_batch_id_id", "job", ["batch_id", "id"], unique=False)
    op.create_index("ix_job_batch_id_status", "job", ["batch_id", "status"], unique=False)
    op.create_index(
        "ix_job_dispatchable",
        "job",
        ["priority", "id"],
        unique=False,
        postgresql_where=sa.text("status IN ('PENDING', 'QUEUED')"),
    )
    op.create_table(
        "job_dependency",
        sa.Column("job_id", sa.BigInteger(), nullable=False),
        sa.Column("depends_on_id", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["depends_on_id"],
            ["job.id"],
            name=op.f("fk_job_dependency_depends_on_id_job"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["job_id"], ["job.id"], name=op.f("fk_job_dependency_job_id_job"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("job_id", "depends_on_id", name=op.f("pk_job_dependency")),
    )
    op.create_index(
        "ix_job_dependency_depends_on_id", "job_dependency", ["depends_on_id"], unique=False
    )
    op.create_table(
        "job_event",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("job_id", sa.BigInteger(), nullable=False),
        sa.Column("batch_id", sa.BigInteger(), nullable=False),
        sa.Column("from_status", JOB_STATUS, nullable=True),
        sa.Column("to_status", JOB_STATUS, nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("worker", sa.String(length=200), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column(
            "at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["batch.id"], name=op.f("fk_job_event_batch_id_batch"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["job_id"], ["job.id"], name=op.f("fk_job_event_job_id_job"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_event")),
    )
    op.create_index("ix_job_event_batch_id_id", "job_event", ["batch_id", "id"], unique=False)
    op.create_index("ix_job_event_job_id_id", "job_event", ["job_id", "id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_job_event_job_id_id", table_name="job_event")
    op.drop_index("ix_job_event_batch_id_id", table_name="job_event")
    op.drop_table("job_event")
    op.drop_index("ix_job_dependency_depends_on_id", table_name="job_dependency")
    op.drop_table("job_dependency")
    op.drop_index(
        "ix_job_dispatchable",
        table_name="job",
        postgresql_where=sa.text("status IN ('PENDING', 'QUEUED')"),
    )
    op.drop_index("ix_job_batch_id_status", table_name="job")
    op.drop_index("ix_job_batch_id_id", table_name="job")
    op.drop_table("job")
    op.drop_table("batch_node")
    op.drop_table("recipe")
    op.drop_table("batch_item")
    op.drop_index("ix_batch_workspace_id_created_at", table_name="batch")
    op.drop_index("ix_batch_root_batch_id_id", table_name="batch")
    op.drop_table("batch")
    postgresql.ENUM(name="job_status").drop(op.get_bind(), checkfirst=True)
