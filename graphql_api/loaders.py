"""DataLoaders, built per request. Each batch of keys runs on its own short read session."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.dataloader import DataLoader

from db.models import Batch, Job, JobEvent, Recipe, TaskType, TaskTypeRevision, Workspace
from db.repositories.batch import BatchRepository, NodeCounters
from db.repositories.job import JobFilter, JobRepository
from db.repositories.pagination import Page
from db.repositories.task_type import TaskTypeRepository
from db.repositories.workspace import WorkspaceRepository
from db.session import Database

K = TypeVar("K")
V = TypeVar("V")
G = TypeVar("G", bound=Hashable)

# (batch id, first, filter) → the first page of that batch's jobs
JobsPageKey = tuple[int, int, JobFilter]


class Loaders:
    def __init__(self, db: Database) -> None:
        self._db = db
        load = self._loader
        self.workspace: DataLoader[int, Workspace | None] = load(
            lambda s, ids: WorkspaceRepository(s).get_many(ids)
        )
        self.task_type: DataLoader[int, TaskType | None] = load(
            lambda s, ids: TaskTypeRepository(s).get_many(ids)
        )
        # Keyed by (task type id, revision number).
        self.revision: DataLoader[tuple[int, int], TaskTypeRevision | None] = load(
            lambda s, keys: TaskTypeRepository(s).get_revisions(keys)
        )
        self.revision_by_id: DataLoader[int, TaskTypeRevision | None] = load(
            lambda s, ids: TaskTypeRepository(s).get_revisions_by_id(ids)
        )
        self.batch: DataLoader[int, Batch | None] = load(
            lambda s, ids: BatchRepository(s).get_many(ids)
        )
        self.next_batch: DataLoader[int, Batch | None] = load(
            lambda s, ids: BatchRepository(s).next_batches(ids)
        )
        self.batch_nodes: DataLoader[int, list[NodeCounters]] = load(
            lambda s, ids: BatchRepository(s).nodes(ids)
        )
        self.chain: DataLoader[int, list[Batch]] = load(
            lambda s, roots: BatchRepository(s).chains(roots)
        )
        self.recipes_page: DataLoader[tuple[int, int], Page[Recipe]] = self._grouped(
            group=lambda key: key[1],
            fetch=lambda s, first, keys: BatchRepository(s).first_recipes_per_batch(
                [k[0] for k in keys], first=first
            ),
        )
        self.recipe_jobs_page: DataLoader[tuple[int, int], Page[Job]] = self._grouped(
            group=lambda key: key[1],
            fetch=lambda s, first, keys: JobRepository(s).first_per_recipe(
                [k[0] for k in keys], first=first
            ),
        )
        self.completed_recipes: DataLoader[int, int] = load(
            lambda s, ids: BatchRepository(s).completed_recipe_counts(ids)
        )
        self.recipe: DataLoader[int, Recipe | None] = load(
            lambda s, ids: BatchRepository(s).get_recipes(ids)
        )
        self.job: DataLoader[int, Job | None] = load(lambda s, ids: JobRepository(s).get_many(ids))
        self.dependencies: DataLoader[int, list[int]] = load(
            lambda s, ids: JobRepository(s).related(ids, dependents=False)
        )
        self.dependents: DataLoader[int, list[int]] = load(
            lambda s, ids: JobRepository(s).related(ids, dependents=True)
        )
        self.queue: DataLoader[tuple[int, int], list[Job]] = self._grouped(
            group=lambda key: key[1],
            fetch=lambda s, first, keys: JobRepository(s).waiting(
                [k[0] for k in keys], first=first
            ),
        )
        self.event_count: DataLoader[int, int] = load(
            lambda s, ids: JobRepository(s).event_counts(ids)
        )
        self.jobs_page: DataLoader[JobsPageKey, Page[Job]] = self._grouped(
            group=lambda key: (key[1], key[2]),
            fetch=lambda s, group, keys: JobRepository(s).first_per_batch(
                [k[0] for k in keys], first=group[0], flt=group[1]
            ),
        )
        self.jobs_count: DataLoader[tuple[int, JobFilter], int] = self._grouped(
            group=lambda key: key[1],
            fetch=lambda s, flt, keys: JobRepository(s).count_per_batch(
                [k[0] for k in keys], flt=flt
            ),
        )
        self.events_page: DataLoader[tuple[int, int], Page[JobEvent]] = self._grouped(
            group=lambda key: key[1],
            fetch=lambda s, first, keys: JobRepository(s).first_events_per_job(
                [k[0] for k in keys], first=first
            ),
        )

    def _loader(
        self, fetch: Callable[[AsyncSession, Sequence[K]], Awaitable[list[V]]]
    ) -> DataLoader[K, V]:
        async def load(keys: Sequence[K]) -> list[V]:
            async with self._db.read_session() as session:
                return await fetch(session, keys)

        return DataLoader(load_fn=load)

    def _grouped(
        self,
        *,
        group: Callable[[K], G],
        fetch: Callable[[AsyncSession, G, Sequence[K]], Awaitable[list[V]]],
    ) -> DataLoader[K, V]:
        """Keys that share a group (e.g. the same page size and filter) load together."""

        async def load(keys: Sequence[K]) -> list[V]:
            groups: dict[G, list[K]] = {}
            for key in keys:
                groups.setdefault(group(key), []).append(key)
            found: dict[K, V] = {}
            async with self._db.read_session() as session:
                for g, members in groups.items():
                    for key, value in zip(members, await fetch(session, g, members), strict=True):
                        found[key] = value
            return [found[key] for key in keys]

        return DataLoader(load_fn=load)
