"""The unit of work: one write session; commit only when asked; after-commit callbacks."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any, Protocol

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.repositories.artifact import ArtifactRepository
from db.repositories.batch import BatchRepository
from db.repositories.job import JobRepository
from db.repositories.moves import CreationRepository, MoveRepository
from db.repositories.periodic import PeriodicRepository
from db.repositories.task_type import TaskTypeRepository
from db.repositories.token import TokenRepository
from db.repositories.worker import WorkerRepository
from db.repositories.workspace import WorkspaceRepository

log = logging.getLogger(__name__)

AfterCommit = Callable[[], Awaitable[None]]


class Sender(Protocol):
    """Where messages go after a commit (the domain's Dispatcher port fits)."""

    async def send(self, actor_name: str, *args: Any, delay_ms: int | None = None) -> None: ...


class StoreOpener(Protocol):
    """Opens file stores (the domain's FileStores port fits)."""

    def open(self, store_id: int, backend: str, configuration: Mapping[str, Any]) -> Any: ...


class UnitOfWork:
    """Owns one write session. Nothing is committed unless ``commit()`` is called.

    Messages (``send_after_commit``) and callbacks (``after_commit``) go out only
    once the commit has succeeded, for rows that now exist; they are dropped on
    rollback. A message that cannot be sent is recovered from the database by
    the reconcilers (the database is the truth about jobs).
    """

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        dispatcher: Sender | None = None,
        file_stores: StoreOpener | None = None,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._session: AsyncSession | None = None
        self._after_commit: list[AfterCommit] = []
        self._outbox: list[tuple[str, tuple[Any, ...], int | None]] = []
        self._dispatcher = dispatcher
        # What periodic work needs to reach file bytes (expiry); None where unused.
        self.file_stores = file_stores

    async def __aenter__(self) -> UnitOfWork:
        self._session = self._sessionmaker()
        self.workspaces = WorkspaceRepository(self._session)
        self.tokens = TokenRepository(self._session)
        self.task_types = TaskTypeRepository(self._session)
        self.batches = BatchRepository(self._session)
        self.jobs = JobRepository(self._session)
        self.workers = WorkerRepository(self._session)
        self.moves = MoveRepository(self._session)
        self.creation = CreationRepository(self._session)
        self.periodic = PeriodicRepository(self._session)
        self.artifacts = ArtifactRepository(self._session)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        session = self.session
        self._session = None
        try:
            await session.rollback()
        finally:
            await session.close()
            self._after_commit.clear()
            self._outbox.clear()

    @property
    def session(self) -> AsyncSession:
        if self._session is None:
            raise RuntimeError("UnitOfWork used outside its 'async with' block")
        return self._session

    async def try_advisory_xact_lock(self, key: int) -> bool:
        """A lock held until this unit of work ends; False if another holds it."""
        return bool(await self.session.scalar(select(func.pg_try_advisory_xact_lock(key))))

    def after_commit(self, callback: AfterCommit) -> None:
        self._after_commit.append(callback)

    def send_after_commit(self, actor_name: str, *args: Any, delay_ms: int | None = None) -> None:
        self._outbox.append((actor_name, args, delay_ms))

    async def commit(self) -> None:
        await self.session.commit()
        callbacks, self._after_commit = self._after_commit, []
        outbox, self._outbox = self._outbox, []
        for callback in callbacks:
            try:
                await callback()
            except Exception:
                # The commit stands; whatever the callback announced is recovered
                # from the database by the reconcilers.
                log.exception("after-commit callback failed")
        if outbox and self._dispatcher is None:
            log.debug("no dispatcher: %d messages not sent", len(outbox))
            return
        for actor_name, args, delay_ms in outbox:
            try:
                assert self._dispatcher is not None
                await self._dispatcher.send(actor_name, *args, delay_ms=delay_ms)
            except Exception:
                log.exception("sending %s%r after commit failed", actor_name, args)
