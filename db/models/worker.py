from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Enum, ForeignKey, Identity, String, func
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base
from db.enums import WorkerKind


class Worker(Base):
    """A process that runs jobs. Connected ⇔ it connected and its last heartbeat is
    within the timeout (see domain.workers.rules)."""

    __tablename__ = "worker"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    kind: Mapped[WorkerKind] = mapped_column(Enum(WorkerKind, name="worker_kind"))
    token_id: Mapped[int | None] = mapped_column(ForeignKey("token.id", ondelete="SET NULL"))
    host: Mapped[str] = mapped_column(String(255))
    concurrency: Mapped[int] = mapped_column(default=1)
    enabled: Mapped[bool] = mapped_column(default=True)
    static_metadata: Mapped[dict[str, Any]] = mapped_column(default=dict)
    dynamic_metadata: Mapped[dict[str, Any]] = mapped_column(default=dict)
    registered_at: Mapped[datetime] = mapped_column(server_default=func.now())
    connected_at: Mapped[datetime | None]
    last_seen_at: Mapped[datetime | None]
    disconnected_at: Mapped[datetime | None]
    lost_at: Mapped[datetime | None]
