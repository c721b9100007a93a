from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Enum, Identity, String, func
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base
from db.enums import TokenRole


class Token(Base):
    """An API token. Only the sha256 of the secret is stored; the secret is shown once."""

    __tablename__ = "token"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    owner: Mapped[str] = mapped_column(String(200))
    role: Mapped[TokenRole] = mapped_column(Enum(TokenRole, name="token_role"))
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    enabled: Mapped[bool] = mapped_column(default=True)
    expires_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
