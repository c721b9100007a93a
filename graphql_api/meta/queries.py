from __future__ import annotations

from datetime import datetime

import strawberry

import domain.maintenance.service  # noqa: F401  (registers the maintenance tasks)
from domain.auth.rules import require_authenticated
from domain.periodic.service import REGISTRY
from graphql_api.context import Info
from graphql_api.settings import package_version


@strawberry.type(
    description="A periodic task of the fleet: one process at a time runs it, every interval."
)
class PeriodicTask:
    name: str
    description: str
    interval_seconds: float
    next_run_at: datetime
    last_started_at: datetime | None
    last_finished_at: datetime | None
    last_outcome: str | None = strawberry.field(description="What its last run did, if anything.")
    last_error: str | None = strawberry.field(description="Why its last run failed, if it did.")
    runs: int
    runner: str | None = strawberry.field(description="The process that ran it last.")


@strawberry.type(description="Request limits this server enforces.")
class ApiLimits:
    max_depth: int
    max_aliases: int
    max_tokens: int
    max_batch_operations: int
    max_body_bytes: int
    default_page_size: int
    max_page_size: int


@strawberry.type(description="About this API (TopChef's API metadata).")
class ApiMetadata:
    version: str
    documentation_url: str
    maintainer: str
    source_url: str
    limits: ApiLimits


@strawberry.type
class MetaQueries:
    @strawberry.field(
        description="The periodic tasks (maintenance, counter folding, …): last and next run."
        " Needs a token."
    )
    async def periodic_tasks(self, info: Info) -> list[PeriodicTask]:
        require_authenticated(info.context.actor)
        async with info.context.reads() as reads:
            rows = await reads.periodic.all()
        return [
            PeriodicTask(
                name=row.name,
                description=REGISTRY[row.name].description if row.name in REGISTRY else "",
                interval_seconds=row.interval_seconds,
                next_run_at=row.next_run_at,
                last_started_at=row.last_started_at,
                last_finished_at=row.last_finished_at,
                last_outcome=row.last_outcome,
                last_error=row.last_error,
                runs=row.runs,
                runner=row.runner,
            )
            for row in rows
        ]

    @strawberry.field
    def api_metadata(self, info: Info) -> ApiMetadata:
        settings = info.context.settings
        lim = settings.limits
        return ApiMetadata(
            version=package_version(),
            documentation_url=settings.documentation_url,
            maintainer=settings.maintainer,
            source_url=settings.source_url,
            limits=ApiLimits(
                max_depth=lim.max_depth,
                max_aliases=lim.max_aliases,
                max_tokens=lim.max_tokens,
                max_batch_operations=lim.max_batch_operations,
                max_body_bytes=lim.max_body_bytes,
                default_page_size=lim.default_page_size,
                max_page_size=lim.max_page_size,
            ),
        )
