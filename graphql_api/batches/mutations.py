from __future__ import annotations

from typing import Annotated

import strawberry

from domain.batches import service
from domain.errors import DomainError
from graphql_api.batches.inputs import BatchInput, EditBatchInput, ReprocessBatchInput
from graphql_api.batches.types import Batch
from graphql_api.batches.validation import BatchValidation, InvalidBatch
from graphql_api.context import Info
from graphql_api.errors import Error, InvalidTransition, NotFound, ValidationFailed
from graphql_api.ids import parse_id
from graphql_api.mutations import mutate


@strawberry.type(description="The batch is stored; recipes and jobs are being created.")
class BatchCreated:
    batch: Batch
    validation: BatchValidation


@strawberry.type(description="A dry run: what would be created. Nothing was written.")
class BatchDryRun:
    validation: BatchValidation


@strawberry.type
class BatchUpdated:
    batch: Batch


@strawberry.type
class BatchCanceled:
    batch: Batch
    canceled_jobs: int


@strawberry.type
class BatchRetried:
    batch: Batch
    retried_jobs: int


CreateBatchPayload = Annotated[
    BatchCreated | BatchDryRun | InvalidBatch | NotFound, strawberry.union("CreateBatchPayload")
]
EditBatchPayload = Annotated[
    BatchUpdated | ValidationFailed | NotFound, strawberry.union("EditBatchPayload")
]
CancelBatchPayload = Annotated[
    BatchCanceled | InvalidTransition | ValidationFailed | NotFound,
    strawberry.union("CancelBatchPayload"),
]
RetryBatchPayload = Annotated[BatchRetried | NotFound, strawberry.union("RetryBatchPayload")]


def _created(created: service.Created) -> BatchCreated | BatchDryRun:
    validation = BatchValidation.of(created.validation)
    if created.batch is None:
        return BatchDryRun(validation=validation)
    return BatchCreated(batch=Batch.from_model(created.batch), validation=validation)


def _invalid(exc: DomainError) -> Error | None:
    if isinstance(exc, service.InvalidBatchError):
        return InvalidBatch(
            code=exc.code, message=exc.message, validation=BatchValidation.of(exc.validation)
        )
    return None


@strawberry.type
class BatchMutations:
    @strawberry.mutation(
        description="Validate and create a batch (writer); recipes and jobs follow in the"
        " background. With dryRun, only say what would be created."
    )
    async def create_batch(
        self, info: Info, input: BatchInput, dry_run: bool = False
    ) -> CreateBatchPayload:
        return await mutate(
            info,
            CreateBatchPayload,
            lambda uow: service.create_batch(
                uow,
                spec=input.to_spec(),
                actor=info.context.actor,
                dry_run=dry_run,
            ),
            _created,
            refine=_invalid,
        )

    @strawberry.mutation(description="Re-process a chain (a convenience over createBatch).")
    async def reprocess_batch(
        self, info: Info, input: ReprocessBatchInput, dry_run: bool = False
    ) -> CreateBatchPayload:
        return await mutate(
            info,
            CreateBatchPayload,
            lambda uow: service.reprocess_batch(
                uow,
                root_batch_id=parse_id(input.root_batch, "Batch"),
                rerun=input.rerun,
                nodes=tuple(input.nodes),
                title=input.title,
                description=input.description,
                recipe=input.recipe,
                priority=input.priority,
                actor=info.context.actor,
                dry_run=dry_run,
            ),
            _created,
            refine=_invalid,
        )

    @strawberry.mutation(description="Change title, description or configuration (writer).")
    async def edit_batch(self, info: Info, input: EditBatchInput) -> EditBatchPayload:
        return await mutate(
            info,
            EditBatchPayload,
            lambda uow: service.edit_batch(
                uow,
                batch_id=parse_id(input.batch, "Batch"),
                edit=service.BatchEdit(
                    title=input.title,
                    description=input.description,
                    priority=input.priority,
                    max_parallel_jobs=input.max_parallel_jobs,
                ),
                actor=info.context.actor,
            ),
            lambda row: BatchUpdated(batch=Batch.from_model(row)),
        )

    @strawberry.mutation(description="Cancel every unfinished job of a batch (writer).")
    async def cancel_batch(
        self, info: Info, id: strawberry.ID, reason: str | None = None
    ) -> CancelBatchPayload:
        return await mutate(
            info,
            CancelBatchPayload,
            lambda uow: service.cancel_batch(
                uow, batch_id=parse_id(id, "Batch"), reason=reason, actor=info.context.actor
            ),
            lambda found: BatchCanceled(batch=Batch.from_model(found[0]), canceled_jobs=found[1]),
        )

    @strawberry.mutation(
        description="Retry every FAILED job of a batch as a new attempt (writer), with what"
        " they had canceled downstream; includeCanceled re-opens CANCELED jobs too."
    )
    async def retry_batch(
        self, info: Info, id: strawberry.ID, include_canceled: bool = False
    ) -> RetryBatchPayload:
        return await mutate(
            info,
            RetryBatchPayload,
            lambda uow: service.retry_batch(
                uow,
                batch_id=parse_id(id, "Batch"),
                include_canceled=include_canceled,
                actor=info.context.actor,
            ),
            lambda found: BatchRetried(batch=Batch.from_model(found[0]), retried_jobs=found[1]),
        )
