"""artifacts: content-addressed files in stores, artifacts with relations, job inputs

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 21:58:00.720498
"""

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "file",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("sha256 ~ '^[0-9a-f]{64}$'", name=op.f("ck_file_sha256_hex")),
        sa.CheckConstraint("size >= 0", name=op.f("ck_file_size_not_negative")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_file")),
        sa.UniqueConstraint("sha256", "size", name=op.f("uq_file_sha256_size")),
    )
    op.create_table(
        "file_store",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("backend", sa.Enum("LOCAL", "S3", name="file_store_backend"), nullable=False),
        sa.Column(
            "configuration",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default="{}",
            nullable=False,
        ),
        sa.Column("is_default", sa.Boolean(), server_default="false", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_file_store")),
        sa.UniqueConstraint("name", name=op.f("uq_file_store_name")),
    )
    op.create_index(
        "uq_file_store_default",
        "file_store",
        ["is_default"],
        unique=True,
        postgresql_where=sa.text("is_default"),
    )
    # The default store: a folder under the data directory (BATCHGRAPH_FILES_DIR).
    op.execute(
        "INSERT INTO file_store (name, backend, configuration, is_default)"
        " VALUES ('local', 'LOCAL', '{}', true)"
    )
    op.create_table(
        "file_in_store",
        sa.Column("file_id", sa.BigInteger(), nullable=False),
        sa.Column("store_id", sa.BigInteger(), nullable=False),
        sa.Column(
            "stored_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["file_id"], ["file.id"], name=op.f("fk_file_in_store_file_id_file"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["store_id"],
            ["file_store.id"],
            name=op.f("fk_file_in_store_store_id_file_store"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("file_id", "store_id", name=op.f("pk_file_in_store")),
    )
    op.create_index("ix_file_in_store_store_id", "file_in_store", ["store_id"], unique=False)
    op.create_table(
        "artifact_category",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("workspace_id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("data_schema", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspace.id"],
            name=op.f("fk_artifact_category_workspace_id_workspace"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_artifact_category")),
        sa.UniqueConstraint(
            "workspace_id", "name", name=op.f("uq_artifact_category_workspace_id_name")
        ),
    )
    op.create_table(
        "artifact",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("workspace_id", sa.BigInteger(), nullable=False),
        sa.Column("category", sa.String(length=100), nullable=False),
        sa.Column("data", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_by_job_id", sa.BigInteger(), nullable=True),
        sa.Column("created_by_token_id", sa.BigInteger(), nullable=True),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("expire_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["created_by_job_id"],
            ["job.id"],
            name=op.f("fk_artifact_created_by_job_id_job"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["created_by_token_id"],
            ["token.id"],
            name=op.f("fk_artifact_created_by_token_id_token"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspace.id"],
            name=op.f("fk_artifact_workspace_id_workspace"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_artifact")),
    )
    op.create_index(
        "ix_artifact_created_by_job_id", "artifact", ["created_by_job_id"], unique=False
    )
    op.create_index(
        "ix_artifact_expire_at",
        "artifact",
        ["expire_at"],
        unique=False,
        postgresql_where=sa.text("expire_at IS NOT NULL"),
    )
    op.create_index("ix_artifact_workspace_id_id", "artifact", ["workspace_id", "id"], unique=False)
    op.create_table(
        "artifact_file",
        sa.Column("artifact_id", sa.BigInteger(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("file_id", sa.BigInteger(), nullable=False),
        sa.Column("content_type", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["artifact_id"],
            ["artifact.id"],
            name=op.f("fk_artifact_file_artifact_id_artifact"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["file_id"],
            ["file.id"],
            name=op.f("fk_artifact_file_file_id_file"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("artifact_id", "path", name=op.f("pk_artifact_file")),
    )
    op.create_index("ix_artifact_file_file_id", "artifact_file", ["file_id"], unique=False)
    op.create_table(
        "artifact_relation",
        sa.Column("source_id", sa.BigInteger(), nullable=False),
        sa.Column("target_id", sa.BigInteger(), nullable=False),
        sa.Column(
            "type",
            sa.Enum("EXTENDS", "RELATES_TO", "BUILT_USING", name="artifact_relation_type"),
            nullable=False,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("source_id <> target_id", name=op.f("ck_artifact_relation_not_self")),
        sa.ForeignKeyConstraint(
            ["source_id"],
            ["artifact.id"],
            name=op.f("fk_artifact_relation_source_id_artifact"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["target_id"],
            ["artifact.id"],
            name=op.f("fk_artifact_relation_target_id_artifact"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "source_id", "target_id", "type", name=op.f("pk_artifact_relation")
        ),
    )
    op.create_index(
        "ix_artifact_relation_target_id", "artifact_relation", ["target_id"], unique=False
    )
    op.create_table(
        "job_input",
        sa.Column("job_id", sa.BigInteger(), nullable=False),
        sa.Column("artifact_id", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["artifact_id"],
            ["artifact.id"],
            name=op.f("fk_job_input_artifact_id_artifact"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["job_id"], ["job.id"], name=op.f("fk_job_input_job_id_job"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("job_id", "artifact_id", name=op.f("pk_job_input")),
    )
    op.create_index("ix_job_input_artifact_id", "job_input", ["artifact_id"], unique=False)
    op.add_column("workspace", sa.Column("file_store_id", sa.BigInteger(), nullable=True))
    op.add_column(
        "workspace",
        sa.Column("artifact_expiry_seconds", sa.Integer(), server_default="0", nullable=False),
    )
    op.create_foreign_key(
        op.f("fk_workspace_file_store_id_file_store"),
        "workspace",
        "file_store",
        ["file_store_id"],
        ["id"],
        ondelete="RESTRICT",
    )


def downgrade() -> None:
    op.drop_constraint(
        op.f("fk_workspace_file_store_id_file_store"), "workspace", type_="foreignkey"
    )
    op.drop_column("workspace", "artifact_expiry_seconds")
    op.drop_column("workspace", "file_store_id")
    op.drop_index("ix_job_input_artifact_id", table_name="job_input")
    op.drop_table("job_input")
    op.drop_index("ix_artifact_relation_target_id", table_name="artifact_relation")
    op.drop_table("artifact_relation")
    op.drop_index("ix_artifact_file_file_id", table_name="artifact_file")
    op.drop_table("artifact_file")
    op.drop_index("ix_artifact_workspace_id_id", table_name="artifact")
    op.drop_index(
        "ix_artifact_expire_at",
        table_name="artifact",
        postgresql_where=sa.text("expire_at IS NOT NULL"),
    )
    op.drop_index("ix_artifact_created_by_job_id", table_name="artifact")
    op.drop_table("artifact")
    op.drop_table("artifact_category")
    op.drop_index("ix_file_in_store_store_id", table_name="file_in_store")
    op.drop_table("file_in_store")
    op.drop_index(
        "uq_file_store_default", table_name="file_store", postgresql_where=sa.text("is_default")
    )
    op.drop_table("file_store")
    op.drop_table("file")
    # An autogenerated downgrade keeps enum types; a later upgrade would then fail.
    op.execute("DROP TYPE artifact_relation_type")
    op.execute("DROP TYPE file_store_backend")
