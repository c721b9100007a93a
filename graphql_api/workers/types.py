from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import cast

import strawberry
from strawberry import relay
from strawberry.relay.utils import to_base64
from strawberry.scalars import JSON

from db import models
from db.enums import WorkerKind
from db.repositories.job import JobFilter as RepoJobFilter
from domain.auth.rules import require_authenticated
from domain.workers.rules import is_connected, metadata
from graphql_api.context import Info
from graphql_api.ids import node_ints
from graphql_api.jobs.types import Job, JobFilter
from graphql_api.relay import Connection, paginate


@strawberry.type(description="A process that runs jobs: a fleet worker or a pull worker.")
class Worker(relay.Node):
    id: relay.NodeID[int]
    name: str
    kind: WorkerKind
    host: str
    concurrency: int
    enabled: bool
    registered_at: datetime
    connected_at: datetime | None
    last_seen_at: datetime | None
    disconnected_at: datetime | None
    lost_at: datetime | None
    static_metadata: JSON = strawberry.field(description="Set by an admin; wins on conflicts.")
    dynamic_metadata: JSON = strawberry.field(description="Reported with each heartbeat.")
    token: strawberry.Private[int | None]

    @classmethod
    def from_model(cls, row: models.Worker) -> Worker:
        return cls(
            id=row.id,
            name=row.name,
            kind=row.kind,
            host=row.host,
            concurrency=row.concurrency,
            enabled=row.enabled,
            registered_at=row.registered_at,
            connected_at=row.connected_at,
            last_seen_at=row.last_seen_at,
            disconnected_at=row.disconnected_at,
            lost_at=row.lost_at,
            static_metadata=cast(JSON, row.static_metadata),
            dynamic_metadata=cast(JSON, row.dynamic_metadata),
            token=row.token_id,
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Worker | None]:
        require_authenticated(info.context.actor)
        async with info.context.reads() as reads:
            rows = await reads.workers.get_many(node_ints(list(node_ids)))
        return [cls.from_model(r) if r else None for r in rows]

    @strawberry.field(description="Connected and heard from within the timeout.")
    def is_connected(self) -> bool:
        return is_connected(
            connected_at=self.connected_at, last_seen_at=self.last_seen_at, now=datetime.now(UTC)
        )

    @strawberry.field(
        description="The worker's token (pull workers; null for fleet workers). An admin"
        " enables it with setTokenEnabled(id: tokenId, enabled: true)."
    )
    def token_id(self) -> strawberry.ID | None:
        return None if self.token is None else strawberry.ID(to_base64("Token", self.token))

    @strawberry.field(
        description="Whether the worker's token is enabled: a pull worker claims jobs only"
        " with an enabled token (null for fleet workers, which have none)."
    )
    async def is_token_enabled(self, info: Info) -> bool | None:
        if self.token is None:
            return None
        row = await info.context.loaders.token.load(self.token)
        return None if row is None else row.enabled

    @strawberry.field(description="Dynamic metadata overlaid by static metadata.")
    def metadata(self) -> JSON:
        static = cast(dict[str, object], self.static_metadata)
        dynamic = cast(dict[str, object], self.dynamic_metadata)
        return cast(JSON, metadata(static, dynamic))

    @strawberry.field(description="Jobs this worker ran or runs, oldest first.")
    async def jobs(
        self,
        info: Info,
        filter: JobFilter | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[Job]:
        flt = filter.to_repo() if filter else RepoJobFilter()
        scoped = dataclasses.replace(flt, worker=self.name)
        return await paginate(
            info,
            first=first,
            after=after,
            page=lambda reads, args: reads.jobs.page(scoped, after=args.after, first=args.first),
            count=lambda reads: reads.jobs.count(scoped),
            convert=Job.from_model,
        )
