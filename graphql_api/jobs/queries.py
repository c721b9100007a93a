from __future__ import annotations

import strawberry

from db.repositories.job import JobFilter as RepoJobFilter
from domain.auth.rules import sees_private_workspaces
from graphql_api.context import Info
from graphql_api.ids import MISSING, parse_id
from graphql_api.jobs.types import Job, JobFilter
from graphql_api.relay import Connection, paginate


@strawberry.type
class JobQueries:
    @strawberry.field(description="Jobs you may read, oldest first; optionally of one batch.")
    async def jobs(
        self,
        info: Info,
        batch: strawberry.ID | None = None,
        filter: JobFilter | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[Job]:
        scope = {
            "public_only": not sees_private_workspaces(info.context.actor),
            "batch_id": parse_id(batch, "Batch") if batch else None,
        }
        flt = filter.to_repo(**scope) if filter else RepoJobFilter(**scope)  # type: ignore[arg-type]
        return await paginate(
            info,
            first=first,
            after=after,
            page=lambda reads, args: reads.jobs.page(flt, after=args.after, first=args.first),
            count=lambda reads: reads.jobs.count(flt),
            convert=Job.from_model,
        )

    @strawberry.field(description="A job by id; null if missing or not readable.")
    async def job(self, info: Info, id: strawberry.ID) -> Job | None:
        job_id = parse_id(id, "Job")
        if job_id == MISSING:
            return None
        [found] = await Job.resolve_nodes(info=info, node_ids=[str(job_id)])
        return found
