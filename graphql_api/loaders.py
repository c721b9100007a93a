"""DataLoaders, built per request. Each batch of keys runs on its own short read session."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.dataloader import DataLoader

from db.enums import RelationType
from db.models import (
    Artifact,
    Batch,
    Job,
    JobEvent,
    Recipe,
    TaskType,
    TaskTypeRevision,
    Token,
    Worker,
    Workspace,
)
from db.repositories.artifact import ArtifactRepository, FileEntry, RelationRow
from db.repositories.batch import BatchRepository
from db.repositories.counters import NodeCounts
from db.repositories.job import JobFilter, JobRepository
from db.repositories.pagination import Page
from db.repositories.task_type import TaskTypeRepository
from db.repositories.token import TokenRepository
from db.repositories.worker import WorkerRepository
from db.repositories.workspace import WorkspaceRepository
from db.session import Database
from domain.workers.rules import DEFAULT_TIMEOUT_SECONDS

K = TypeVar("K")
V = TypeVar("V")
G = TypeVar("G", bound=Hashable)

# (batch id, first, filter) → the first page of that batch's jobs
JobsPageKey = tuple[int, int, JobFilter]
RelationsKey = tuple[int, bool, tuple[RelationType, ...], int]


class SharedLoader(DataLoader[K, V]):
    """A DataLoader whose futures survive one awaiter being cancelled.

    Several fields await the same cached future. When graphql-core gives up on a
    branch (a sibling failed in a non-null position) it cancels that branch's tasks,
    and cancelling a task that awaits a bare future cancels the future itself: the
    other branches then got a CancelledError that escaped the error policy as a
    plain-text 500. Each awaiter gets its own shield instead.
    """

    def load(self, key: K) -> Awaitable[V]:
        return asyncio.shield(super().load(key))


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
        self.batch_nodes: DataLoader[int, list[NodeCounts]] = load(
            lambda s, ids: BatchRepository(s).nodes(ids)
        )
        self.last_modified: DataLoader[int, datetime | None] = load(
            lambda s, ids: BatchRepository(s).last_changes(ids)
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
        self.token: DataLoader[int, Token | None] = load(
            lambda s, ids: TokenRepository(s).get_many(ids)
        )
        # One key (0): the workers connected now, with their tokens' state, read once
        # per request however many jobs ask why they wait.
        self.connected_workers: DataLoader[int, list[tuple[Worker, bool | None]]] = load(
            lambda s, keys: _connected_workers(s, len(keys))
        )
        self.events_page: DataLoader[tuple[int, int], Page[JobEvent]] = self._grouped(
            group=lambda key: key[1],
            fetch=lambda s, first, keys: JobRepository(s).first_events_per_job(
                [k[0] for k in keys], first=first
            ),
        )

        self.artifact: DataLoader[int, Artifact | None] = load(
            lambda s, ids: ArtifactRepository(s).get_many(ids)
        )
        self.artifact_files_page: DataLoader[tuple[int, int], Page[FileEntry]] = self._grouped(
            group=lambda key: key[1],
            fetch=lambda s, first, keys: ArtifactRepository(s).first_entries(
                [k[0] for k in keys], first=first
            ),
        )
        # (files, bytes, files not uploaded yet)
        self.artifact_file_counts: DataLoader[int, tuple[int, int, int]] = load(
            lambda s, ids: ArtifactRepository(s).file_counts(ids)
        )
        # (artifact, outgoing, types, first) → its relations
        self.relations: DataLoader[RelationsKey, list[RelationRow]] = self._grouped(
            group=lambda key: (key[1], key[2], key[3]),
            fetch=lambda s, g, keys: ArtifactRepository(s).relations(
                [k[0] for k in keys], outgoing=g[0], types=g[1], first=g[2]
            ),
        )
        self.job_inputs: DataLoader[int, list[int]] = load(
            lambda s, ids: ArtifactRepository(s).inputs_of(ids)
        )
        self.job_outputs: DataLoader[int, list[int]] = load(
            lambda s, ids: ArtifactRepository(s).outputs_of(ids)
        )

    def _loader(
        self, fetch: Callable[[AsyncSession, Sequence[K]], Awaitable[list[V]]]
    ) -> DataLoader[K, V]:
        async def load(keys: Sequence[K]) -> list[V]:
            async with self._db.read_session() as session:
                return await fetch(session, keys)

        return SharedLoader(load_fn=load)

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

        return SharedLoader(load_fn=load)


async def _connected_workers(
    session: AsyncSession, n: int
) -> list[list[tuple[Worker, bool | None]]]:
    cutoff = datetime.now(UTC) - timedelta(seconds=DEFAULT_TIMEOUT_SECONDS)
    found = await WorkerRepository(session).connected(cutoff)
    return [found] * n
