from __future__ import annotations

import strawberry
from strawberry.scalars import JSON

from db.enums import CachePolicy, RerunMode
from domain.batches import service
from graphql_api.ids import parse_id


@strawberry.input(description="Re-process a chain, named by its root batch.")
class PreviousBatchInput:
    root_batch: strawberry.ID
    rerun: RerunMode = RerunMode.ALL
    nodes: list[str] = strawberry.field(
        default_factory=list, description="With rerun NODES: the nodes to run again."
    )


@strawberry.input(
    description="A batch. `definition` is `{recipe: {nodes: [...]}, inputs: [...]}`; with"
    " previousBatch, the recipe is optional (default: the previous one) and inputs come from"
    " the previous batch."
)
class BatchInput:
    title: str
    workspace: str = "default"
    description: str = ""
    definition: JSON | None = None
    previous_batch: PreviousBatchInput | None = None
    priority: int = 0
    cache_policy: CachePolicy | None = None
    max_parallel_jobs: int | None = None

    def to_spec(self) -> service.BatchSpec:
        previous = None
        if self.previous_batch is not None:
            previous = service.PreviousBatch(
                root_batch_id=parse_id(self.previous_batch.root_batch, "Batch"),
                rerun=self.previous_batch.rerun,
                nodes=tuple(self.previous_batch.nodes),
            )
        return service.BatchSpec(
            workspace=self.workspace,
            title=self.title,
            description=self.description,
            definition=self.definition,
            previous=previous,
            priority=self.priority,
            cache_policy=self.cache_policy,
            max_parallel_jobs=self.max_parallel_jobs,
        )


@strawberry.input(description="Re-process a chain: a convenience over createBatch.")
class ReprocessBatchInput:
    root_batch: strawberry.ID
    rerun: RerunMode = RerunMode.ALL
    nodes: list[str] = strawberry.field(default_factory=list)
    title: str | None = strawberry.field(
        default=None, description="Default: the previous batch's title."
    )
    description: str = ""
    recipe: JSON | None = strawberry.field(
        default=None, description="A new recipe ({nodes: [...]}); default: the previous one."
    )
    priority: int = 0


@strawberry.input(description="Only these change after creation.")
class EditBatchInput:
    batch: strawberry.ID
    title: str | None = None
    description: str | None = None
    priority: int | None = None
    max_parallel_jobs: int | None = None
