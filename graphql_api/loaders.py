"""DataLoaders, built per request. Each batch runs on its own short read session."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.dataloader import DataLoader

from db.models import TaskType, TaskTypeRevision, Workspace
from db.repositories.task_type import TaskTypeRepository
from db.repositories.workspace import WorkspaceRepository
from db.session import Database

K = TypeVar("K")
V = TypeVar("V")


class Loaders:
    def __init__(self, db: Database) -> None:
        self._db = db
        self.workspace: DataLoader[int, Workspace | None] = self._loader(
            lambda s, ids: WorkspaceRepository(s).get_many(ids)
        )
        self.task_type: DataLoader[int, TaskType | None] = self._loader(
            lambda s, ids: TaskTypeRepository(s).get_many(ids)
        )
        # Keyed by (task type id, revision number).
        self.revision: DataLoader[tuple[int, int], TaskTypeRevision | None] = self._loader(
            lambda s, keys: TaskTypeRepository(s).get_revisions(keys)
        )

    def _loader(
        self, fetch: Callable[[AsyncSession, Sequence[K]], Awaitable[list[V | None]]]
    ) -> DataLoader[K, V | None]:
        async def load(keys: Sequence[K]) -> list[V | None]:
            async with self._db.read_session() as session:
                return await fetch(session, keys)

        return DataLoader(load_fn=load)
