from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Identity, String, func
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base


class Workspace(Base):
    __tablename__ = "workspace"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    public: Mapped[bool] = mapped_column(default=False, server_default="false")
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    # Where its artifacts' files go (null: the default store).
    file_store_id: Mapped[int | None] = mapped_column(
        ForeignKey("file_store.id", ondelete="RESTRICT")
    )
    # Artifacts expire this long after their creation unless they say otherwise; 0: never.
    artifact_expiry_seconds: Mapped[int] = mapped_column(default=0, server_default="0")
