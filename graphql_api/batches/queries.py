from __future__ import annotations

from typing import Annotated

import strawberry

from db.repositories.batch import BatchFilter as RepoBatchFilter
from domain.auth.rules import sees_private_workspaces
from domain.batches import service
from domain.errors import DomainError
from graphql_api.batches.inputs import BatchInput
from graphql_api.batches.types import Batch, BatchFilter, BatchOrderBy, OrderDirection
from graphql_api.batches.validation import BatchValidation
from graphql_api.context import Info
from graphql_api.errors import NotFound, error_arm
from graphql_api.ids import MISSING, parse_id
from graphql_api.relay import Connection, paginate

ValidateBatchResult = Annotated[BatchValidation | NotFound, strawberry.union("ValidateBatchResult")]


@strawberry.type
class BatchQueries:
    @strawberry.field(
        description="Batches you may read. Without orderBy: by id, ascending (creation"
        " order), which keeps keyset pages stable while jobs run; LAST_MODIFIED order"
        " reshuffles pages as batches change."
    )
    async def batches(
        self,
        info: Info,
        filter: BatchFilter | None = None,
        order_by: BatchOrderBy | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[Batch]:
        f = filter or BatchFilter()
        order = order_by or BatchOrderBy()
        flt = RepoBatchFilter(
            public_only=not sees_private_workspaces(info.context.actor),
            workspace=f.workspace,
            created_after=f.created_after,
            created_before=f.created_before,
            task_type=f.task_type,
            is_creation_done=f.is_creation_done,
            is_superseded=f.is_superseded,
            root_batch_id=parse_id(f.root_batch, "Batch") if f.root_batch else None,
        )
        descending = order.direction is OrderDirection.DESC
        return await paginate(
            info,
            first=first,
            after=after,
            page=lambda reads, args: reads.batches.page(
                flt, order.field, descending=descending, after=args.after, first=args.first
            ),
            count=lambda reads: reads.batches.count(flt),
            convert=Batch.from_model,
        )

    @strawberry.field(description="A batch by id; null if missing or not readable.")
    async def batch(self, info: Info, id: strawberry.ID) -> Batch | None:
        batch_id = parse_id(id, "Batch")
        if batch_id == MISSING:
            return None
        [found] = await Batch.resolve_nodes(info=info, node_ids=[str(batch_id)])
        return found

    @strawberry.field(
        description="Check a batch without creating it (never writes). Answered by its"
        " resolver, not compiled to SQL: validation is domain logic in Python (recipe"
        " checks, JSON Schema)."
    )
    async def validate_batch(self, info: Info, input: BatchInput) -> ValidateBatchResult:
        async with info.context.reads() as reads:
            try:
                found = await service.validate_batch(
                    reads, spec=input.to_spec(), actor=info.context.actor
                )
            except DomainError as exc:
                return error_arm(exc, (NotFound,))  # type: ignore[return-value]
        return BatchValidation.of(found)
