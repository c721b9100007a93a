"""Turns a presented secret into an actor, once per request."""

from __future__ import annotations

from datetime import datetime

from db.repositories.token import TokenRepository
from db.session import Database
from db.uow import UnitOfWork
from domain.auth import service
from domain.auth.rules import Actor


class Authenticator:
    def __init__(self, db: Database) -> None:
        self._db = db
        # When this process last recorded each token's use: recording is a
        # write, so it happens at most once per resolution interval per token.
        self._recorded: dict[int, datetime] = {}

    async def authenticate(self, secret: str, *, now: datetime) -> Actor:
        async with self._db.read_session() as session:
            actor = await service.authenticate(TokenRepository(session), secret=secret, now=now)
        last = self._recorded.get(actor.token_id)
        if last is None or now - last >= service.LAST_USED_RESOLUTION:
            self._recorded[actor.token_id] = now
            async with UnitOfWork(self._db.write_session) as uow:
                await service.record_use(uow, actor=actor, now=now)
                await uow.commit()
        return actor
