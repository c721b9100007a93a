from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base


class PeriodicTask(Base):
    """A named periodic task of the fleet: when it last ran, how, and when it runs next.

    One runner at a time across every process, through a PostgreSQL advisory lock
    taken in the transaction that runs it (see domain/periodic).
    """

    __tablename__ = "periodic_task"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    interval_seconds: Mapped[float]
    next_run_at: Mapped[datetime]
    last_started_at: Mapped[datetime | None]
    last_finished_at: Mapped[datetime | None]
    last_outcome: Mapped[str | None] = mapped_column(Text)
    last_error: Mapped[str | None] = mapped_column(Text)
    runs: Mapped[int] = mapped_column(default=0)
    runner: Mapped[str | None] = mapped_column(String(200))
