from __future__ import annotations

from typing import Annotated

import strawberry

from domain.jobs import service
from graphql_api.context import Info
from graphql_api.errors import InvalidTransition, NotFound, ValidationFailed
from graphql_api.ids import parse_id
from graphql_api.jobs.types import Job
from graphql_api.mutations import mutate


@strawberry.type
class JobUpdated:
    job: Job


JobUpdatePayload = Annotated[
    JobUpdated | InvalidTransition | ValidationFailed | NotFound,
    strawberry.union("JobUpdatePayload"),
]


@strawberry.type
class JobMutations:
    @strawberry.mutation(description="Cancel an unfinished job and what depends on it (writer).")
    async def cancel_job(
        self, info: Info, id: strawberry.ID, reason: str | None = None
    ) -> JobUpdatePayload:
        return await mutate(
            info,
            JobUpdatePayload,
            lambda uow: service.cancel_job(
                uow, job_id=parse_id(id, "Job"), reason=reason, actor=info.context.actor
            ),
            lambda row: JobUpdated(job=Job.from_model(row)),
        )

    @strawberry.mutation(
        description="Retry a FAILED or CANCELED job as a new attempt (writer); jobs canceled"
        " because of it wait for it again."
    )
    async def retry_job(self, info: Info, id: strawberry.ID) -> JobUpdatePayload:
        return await mutate(
            info,
            JobUpdatePayload,
            lambda uow: service.retry_job(
                uow, job_id=parse_id(id, "Job"), actor=info.context.actor
            ),
            lambda row: JobUpdated(job=Job.from_model(row)),
        )
