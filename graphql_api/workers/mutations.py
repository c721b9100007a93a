from __future__ import annotations

from typing import Annotated

import strawberry
from strawberry.relay.utils import to_base64
from strawberry.scalars import JSON

from db.enums import FailureCategory
from domain.workers import pull
from domain.workers import service as workers
from graphql_api.context import Info
from graphql_api.errors import InvalidTransition, NotFound, SchemaMismatch, ValidationFailed
from graphql_api.ids import parse_id
from graphql_api.jobs.types import Job
from graphql_api.mutations import mutate
from graphql_api.workers.types import Worker


@strawberry.input
class RegisterWorkerInput:
    host: str
    concurrency: int = 1
    metadata: JSON | None = strawberry.field(
        default=None, description="Dynamic metadata, e.g. {tasks_allowlist: [...]}."
    )


@strawberry.input
class SetWorkerMetadataInput:
    worker: strawberry.ID
    metadata: JSON = strawberry.field(
        description='Static metadata: wins over what the worker reports (e.g. {arch: "aarch64"}).'
    )


@strawberry.type
class WorkerRegistered:
    worker: Worker
    token: str = strawberry.field(
        description="The worker's token, shown once. Disabled until an admin enables it."
    )
    token_id: strawberry.ID = strawberry.field(
        description="What an admin needs to enable the worker:"
        " setTokenEnabled(id: tokenId, enabled: true)."
    )


@strawberry.type
class WorkerUpdated:
    worker: Worker


@strawberry.type(description="The claimed job, or null when there is nothing to run.")
class JobClaim:
    job: Job | None


@strawberry.type
class JobFinished:
    job: Job


RegisterWorkerPayload = Annotated[
    WorkerRegistered | ValidationFailed, strawberry.union("RegisterWorkerPayload")
]
WorkerHeartbeatPayload = Annotated[
    WorkerUpdated | ValidationFailed, strawberry.union("WorkerHeartbeatPayload")
]
ClaimJobPayload = Annotated[JobClaim | ValidationFailed, strawberry.union("ClaimJobPayload")]
SetWorkerMetadataPayload = Annotated[
    WorkerUpdated | ValidationFailed | NotFound, strawberry.union("SetWorkerMetadataPayload")
]
FinishJobPayload = Annotated[
    JobFinished | SchemaMismatch | InvalidTransition | ValidationFailed | NotFound,
    strawberry.union("FinishJobPayload"),
]


@strawberry.type
class WorkerMutations:
    @strawberry.mutation(
        description="A pull worker registers (no token needed); its token starts disabled."
    )
    async def register_worker(
        self, info: Info, input: RegisterWorkerInput
    ) -> RegisterWorkerPayload:
        return await mutate(
            info,
            RegisterWorkerPayload,
            lambda uow: pull.register(
                uow, host=input.host, concurrency=input.concurrency, metadata=input.metadata or {}
            ),
            lambda found: WorkerRegistered(
                worker=Worker.from_model(found.worker),
                token=found.secret,
                token_id=strawberry.ID(to_base64("Token", found.worker.token_id)),
            ),
        )

    @strawberry.mutation(
        description="Set a worker's static metadata (admin): it wins over what the worker"
        " reports, and task types' requirements are matched against both."
    )
    async def set_worker_metadata(
        self, info: Info, input: SetWorkerMetadataInput
    ) -> SetWorkerMetadataPayload:
        return await mutate(
            info,
            SetWorkerMetadataPayload,
            lambda uow: workers.set_static_metadata(
                uow,
                worker_id=parse_id(input.worker, "Worker"),
                metadata=input.metadata,
                actor=info.context.actor,
            ),
            lambda row: WorkerUpdated(worker=Worker.from_model(row)),
        )

    @strawberry.mutation(description="The worker is alive (worker token).")
    async def worker_heartbeat(
        self, info: Info, metadata: JSON | None = None
    ) -> WorkerHeartbeatPayload:
        return await mutate(
            info,
            WorkerHeartbeatPayload,
            lambda uow: pull.beat(uow, metadata=metadata or {}, actor=info.context.actor),
            lambda row: WorkerUpdated(worker=Worker.from_model(row)),
        )

    @strawberry.mutation(
        description="Claim the next job of an external task type (worker token). `running`:"
        " the jobs this worker still runs; others assigned to it are re-queued."
    )
    async def claim_job(
        self,
        info: Info,
        task_types: list[str] | None = None,
        running: list[strawberry.ID] | None = None,
    ) -> ClaimJobPayload:
        ids = [parse_id(g, "Job") for g in running or []]
        return await mutate(
            info,
            ClaimJobPayload,
            lambda uow: pull.claim(
                uow, task_types=task_types, running=ids, actor=info.context.actor
            ),
            lambda row: JobClaim(job=Job.from_model(row) if row else None),
        )

    @strawberry.mutation(
        description="Complete a job assigned to this worker (worker token). `runSeconds`: how"
        " long the implementation itself ran, as the worker measured it (the job's run"
        " duration in metrics); left out, completed − started stands in; more than the time"
        " since the job started is capped at that."
    )
    async def complete_job(
        self, info: Info, job: strawberry.ID, result: JSON, run_seconds: float | None = None
    ) -> FinishJobPayload:
        return await mutate(
            info,
            FinishJobPayload,
            lambda uow: pull.complete(
                uow,
                job_id=parse_id(job, "Job"),
                result=result,
                actor=info.context.actor,
                run_seconds=run_seconds,
            ),
            lambda row: JobFinished(job=Job.from_model(row)),
        )

    @strawberry.mutation(
        description="Fail a job assigned to this worker (worker token); categories"
        " INFRASTRUCTURE, TIMEOUT and WORKER_LOST retry while attempts are left."
    )
    async def fail_job(
        self,
        info: Info,
        job: strawberry.ID,
        code: str,
        message: str,
        category: FailureCategory = FailureCategory.DOMAIN,
    ) -> FinishJobPayload:
        return await mutate(
            info,
            FinishJobPayload,
            lambda uow: pull.fail(
                uow,
                job_id=parse_id(job, "Job"),
                code=code,
                message=message,
                category=category,
                actor=info.context.actor,
            ),
            lambda row: JobFinished(job=Job.from_model(row)),
        )
