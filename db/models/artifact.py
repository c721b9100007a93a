"""Artifacts (debusine): typed bundles of content-addressed files, and their relations.

A ``File`` is bytes named by (sha256, size), shared by every artifact that holds the
same content. Its bytes are in a store when a ``file_in_store`` row says so — that
row is written only after the bytes are there in full, so an artifact is complete
exactly when each of its files has a row for its workspace's store (or is empty):
no flag can go stale, and two artifacts sharing a file can never make each other
look complete (the race debusine had).
"""

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
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base
from db.enums import RelationType, StoreBackend

RELATION_TYPE = Enum(RelationType, name="artifact_relation_type")


class FileStore(Base):
    """Where file bytes live. Workspaces name one; the default store serves the rest."""

    __tablename__ = "file_store"
    __table_args__ = (
        Index(
            "uq_file_store_default", "is_default", unique=True, postgresql_where=text("is_default")
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    backend: Mapped[StoreBackend] = mapped_column(Enum(StoreBackend, name="file_store_backend"))
    # LOCAL: {"root": folder} (default: BATCHGRAPH_FILES_DIR); S3: {"bucket", "prefix",
    # "endpointUrl", "region"} — credentials come from the environment, never from here.
    configuration: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")
    is_default: Mapped[bool] = mapped_column(default=False, server_default="false")
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class ArtifactCategory(Base):
    """A category that declares what its artifacts' data looks like (a JSON Schema)."""

    __tablename__ = "artifact_category"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    data_schema: Mapped[dict[str, Any]]
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class File(Base):
    __tablename__ = "file"
    __table_args__ = (
        UniqueConstraint("sha256", "size"),
        CheckConstraint("size >= 0", name="size_not_negative"),
        CheckConstraint("sha256 ~ '^[0-9a-f]{64}$'", name="sha256_hex"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class FileInStore(Base):
    """The file's bytes are in this store, in full (written after the bytes, never before)."""

    __tablename__ = "file_in_store"
    __table_args__ = (Index("ix_file_in_store_store_id", "store_id"),)

    file_id: Mapped[int] = mapped_column(
        ForeignKey("file.id", ondelete="CASCADE"), primary_key=True
    )
    store_id: Mapped[int] = mapped_column(
        ForeignKey("file_store.id", ondelete="RESTRICT"), primary_key=True
    )
    stored_at: Mapped[datetime] = mapped_column(server_default=func.now())


class Artifact(Base):
    __tablename__ = "artifact"
    __table_args__ = (
        Index("ix_artifact_workspace_id_id", "workspace_id", "id"),
        Index("ix_artifact_created_by_job_id", "created_by_job_id"),
        Index("ix_artifact_expire_at", "expire_at", postgresql_where=text("expire_at IS NOT NULL")),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="RESTRICT"))
    category: Mapped[str] = mapped_column(String(100))
    data: Mapped[dict[str, Any]]
    created_by_job_id: Mapped[int | None] = mapped_column(ForeignKey("job.id", ondelete="SET NULL"))
    created_by_token_id: Mapped[int | None] = mapped_column(
        ForeignKey("token.id", ondelete="SET NULL")
    )
    created_by: Mapped[str] = mapped_column(String(200))
    # Expired once now >= expire_at; null: never.
    expire_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class ArtifactFile(Base):
    """One path of an artifact and the content it names."""

    __tablename__ = "artifact_file"
    __table_args__ = (Index("ix_artifact_file_file_id", "file_id"),)

    artifact_id: Mapped[int] = mapped_column(
        ForeignKey("artifact.id", ondelete="CASCADE"), primary_key=True
    )
    path: Mapped[str] = mapped_column(Text, primary_key=True)
    file_id: Mapped[int] = mapped_column(ForeignKey("file.id", ondelete="RESTRICT"))
    content_type: Mapped[str] = mapped_column(String(200))


class ArtifactRelation(Base):
    """source → target, typed; unique per (source, target, type)."""

    __tablename__ = "artifact_relation"
    __table_args__ = (
        CheckConstraint("source_id <> target_id", name="not_self"),
        Index("ix_artifact_relation_target_id", "target_id"),
    )

    source_id: Mapped[int] = mapped_column(
        ForeignKey("artifact.id", ondelete="CASCADE"), primary_key=True
    )
    target_id: Mapped[int] = mapped_column(
        ForeignKey("artifact.id", ondelete="CASCADE"), primary_key=True
    )
    type: Mapped[RelationType] = mapped_column(RELATION_TYPE, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class JobInput(Base):
    """An artifact a job reads, recorded when the job is created."""

    __tablename__ = "job_input"
    __table_args__ = (Index("ix_job_input_artifact_id", "artifact_id"),)

    job_id: Mapped[int] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"), primary_key=True)
    artifact_id: Mapped[int] = mapped_column(
        ForeignKey("artifact.id", ondelete="CASCADE"), primary_key=True
    )
