from __future__ import annotations

from datetime import UTC, datetime, timedelta

import strawberry

from domain.auth.rules import require_authenticated
from domain.workers.rules import DEFAULT_TIMEOUT_SECONDS
from graphql_api.context import Info
from graphql_api.relay import Connection, paginate
from graphql_api.workers.types import Worker


@strawberry.type
class WorkerQueries:
    @strawberry.field(
        description="Workers by name; `connected` narrows to those that are"
        " (or are not) connected. Needs a token."
    )
    async def workers(
        self,
        info: Info,
        connected: bool | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[Worker]:
        require_authenticated(info.context.actor)
        cutoff = datetime.now(UTC) - timedelta(seconds=DEFAULT_TIMEOUT_SECONDS)
        return await paginate(
            info,
            first=first,
            after=after,
            page=lambda reads, args: reads.workers.page(
                connected=connected, cutoff=cutoff, after=args.after, first=args.first
            ),
            count=lambda reads: reads.workers.count(connected=connected, cutoff=cutoff),
            convert=Worker.from_model,
        )

    @strawberry.field(description="A worker by name. Needs a token.")
    async def worker(self, info: Info, name: str) -> Worker | None:
        require_authenticated(info.context.actor)
        async with info.context.reads() as reads:
            row = await reads.workers.get_by_name(name)
        return Worker.from_model(row) if row else None
