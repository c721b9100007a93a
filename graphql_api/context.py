"""The per-request context. Each resolver opens its own short session; none is shared."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import asyncpg
import strawberry
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket

from db.events import EventBus
from db.repositories.artifact import ArtifactRepository
from db.repositories.batch import BatchRepository
from db.repositories.job import JobRepository
from db.repositories.periodic import PeriodicRepository
from db.repositories.task_type import TaskTypeRepository
from db.repositories.token import TokenRepository
from db.repositories.worker import WorkerRepository
from db.repositories.workspace import WorkspaceRepository
from db.session import Database
from db.uow import UnitOfWork
from domain.auth.rules import Actor
from domain.ports import Dispatcher, FileStores
from graphql_api.auth.authenticator import Authenticator
from graphql_api.fanout import JobEventHub
from graphql_api.loaders import Loaders
from graphql_api.ratelimit import Budgets
from graphql_api.settings import ApiSettings


@dataclass(frozen=True, slots=True)
class Reads:
    """Repositories over one short read session, for one resolver."""

    workspaces: WorkspaceRepository
    tokens: TokenRepository
    task_types: TaskTypeRepository
    batches: BatchRepository
    jobs: JobRepository
    workers: WorkerRepository
    periodic: PeriodicRepository
    artifacts: ArtifactRepository


@dataclass
class Context:
    db: Database
    dispatcher: Dispatcher
    settings: ApiSettings
    request_id: str
    events: EventBus
    actor: Actor | None = None
    request: Request | WebSocket | None = None
    response: Response | WebSocket | None = None
    connection_params: dict[str, Any] | None = None
    budgets: Budgets | None = None  # None: no rate limit
    authenticator: Authenticator | None = None
    hub: JobEventHub | None = None
    read_pool: asyncpg.Pool | None = None  # the compiled read path's connections
    # Reads through the compiled planner (graphql_api.compiled); False: the resolvers.
    compiled_reads: bool = True
    compiled_plan: Any = None  # what the planner did with this request (tests, debugging)
    stores: FileStores | None = None
    _extra: dict[str, Any] = field(default_factory=dict)

    def unit_of_work(self) -> UnitOfWork:
        return UnitOfWork(
            self.db.write_session, dispatcher=self.dispatcher, file_stores=self.stores
        )

    def base_url(self) -> str:
        """The server's root URL as the client reached it (for file URLs)."""
        request = self.request
        return str(request.base_url) if request is not None else "http://127.0.0.1:8000/"

    @asynccontextmanager
    async def reads(self) -> AsyncIterator[Reads]:
        async with self.db.read_session() as session:
            yield Reads(
                workspaces=WorkspaceRepository(session),
                tokens=TokenRepository(session),
                task_types=TaskTypeRepository(session),
                batches=BatchRepository(session),
                jobs=JobRepository(session),
                workers=WorkerRepository(session),
                periodic=PeriodicRepository(session),
                artifacts=ArtifactRepository(session),
            )

    @cached_property
    def loaders(self) -> Loaders:
        return Loaders(self.db)


Info = strawberry.Info[Context, None]
