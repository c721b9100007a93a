from __future__ import annotations

import strawberry

from db.repositories.comparison import ComparisonRepository
from domain.errors import DomainError
from domain.metrics import service
from domain.metrics.service import ChainComparison
from graphql_api.comparisons.types import BatchComparison
from graphql_api.context import Info
from graphql_api.errors import top_level
from graphql_api.ids import parse_id


async def compare(
    info: Info,
    root_batch_id: strawberry.ID,
    threshold: float | None,
    min_seconds: float | None,
) -> ChainComparison:
    """The chain's comparison on a short read session of its own (two statements);
    bad options are a top-level VALIDATION_FAILED, refused before any SQL."""
    settings = info.context.settings
    async with info.context.db.read_session() as session:
        try:
            return await service.compare_chain(
                ComparisonRepository(session),
                root_batch_id=parse_id(root_batch_id, "Batch"),
                actor=info.context.actor,
                threshold=settings.comparison_threshold if threshold is None else threshold,
                min_seconds=settings.comparison_min_seconds if min_seconds is None else min_seconds,
            )
        except DomainError as exc:
            raise top_level(exc) from exc


@strawberry.type
class ComparisonQueries:
    @strawberry.field(
        description="Compare the batches of a re-processing chain, named by its root batch"
        " (`rootBatch { id }` of any of its batches). Like Scale, any other id — a later"
        " batch of a chain, an unknown id, an id of another type, a chain you may not"
        " read — gives an empty comparison, not an error. `threshold` (a fraction: 0.2 ="
        " 20 %) and `minSeconds` default to the server's settings."
    )
    async def batch_comparison(
        self,
        info: Info,
        root_batch_id: strawberry.ID,
        threshold: float | None = None,
        min_seconds: float | None = None,
    ) -> BatchComparison:
        return BatchComparison.of(await compare(info, root_batch_id, threshold, min_seconds))
