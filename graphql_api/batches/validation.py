"""Validation outcomes as GraphQL data (expected outcomes are data, not errors)."""

from __future__ import annotations

import strawberry

from domain.batches import rules, service
from graphql_api.batches.types import Batch
from graphql_api.context import Info
from graphql_api.errors import Error
from graphql_api.tasktypes.types import TaskType, TaskTypeRevision

SAMPLE = 100


@strawberry.type(
    description="An error or warning. For PARAMETERS_INVALID: the input item,"
    " the node, and the JSON path inside that node's parameters."
)
class BatchIssue:
    name: str
    description: str
    path: str | None
    node: str | None
    input_index: int | None

    @classmethod
    def of(cls, issue: rules.Issue) -> BatchIssue:
        return cls(
            name=issue.name.value,
            description=issue.description,
            path=issue.path,
            node=issue.node,
            input_index=issue.input_index,
        )


@strawberry.type(description="A recipe node with its task type revision pinned.")
class PinnedNode:
    name: str
    depends_on: list[str]
    revision: int
    task_type_id: strawberry.Private[int]
    revision_id: strawberry.Private[int]

    @strawberry.field
    async def task_type(self, info: Info) -> TaskType:
        row = await info.context.loaders.task_type.load(self.task_type_id)
        assert row is not None
        return TaskType.from_model(row)

    @strawberry.field
    async def task_type_revision(self, info: Info) -> TaskTypeRevision:
        row = await info.context.loaders.revision_by_id.load(self.revision_id)
        assert row is not None
        return TaskTypeRevision.from_model(row)


@strawberry.type
class NodeDiff:
    node: str
    status: rules.DiffStatus
    reasons: list[str]


@strawberry.type
class NodeJobCount:
    node: str
    jobs: int


@strawberry.type(description="One recipe the batch would create, and the nodes it would run.")
class PlannedRecipe:
    input_index: int
    nodes: list[str]


@strawberry.type(description="What createBatch would do: valid or not, and why.")
class BatchValidation:
    is_valid: bool
    errors: list[BatchIssue]
    warnings: list[BatchIssue]
    estimated_recipes: int
    planned_recipes: int
    planned_jobs: int
    jobs_by_node: list[NodeJobCount]
    nodes: list[PinnedNode]
    diff: list[NodeDiff]
    sample: list[PlannedRecipe] = strawberry.field(
        description=f"The first {SAMPLE} planned recipes."
    )
    previous_batch_id: strawberry.Private[int | None]

    @strawberry.field(description="Re-processing: the chain's batch this one supersedes.")
    async def previous_batch(self, info: Info) -> Batch | None:
        if self.previous_batch_id is None:
            return None
        row = await info.context.loaders.batch.load(self.previous_batch_id)
        return Batch.from_model(row) if row is not None else None

    @classmethod
    def of(cls, found: service.Validation) -> BatchValidation:
        counts = found.jobs_by_node() if found.is_valid else {}
        return cls(
            is_valid=found.is_valid,
            errors=[BatchIssue.of(i) for i in found.errors],
            warnings=[BatchIssue.of(i) for i in found.warnings],
            estimated_recipes=found.estimated_recipes,
            planned_recipes=len(found.plan) if found.is_valid else 0,
            planned_jobs=sum(counts.values()),
            jobs_by_node=[NodeJobCount(node=k, jobs=v) for k, v in counts.items()],
            nodes=[
                PinnedNode(
                    name=n.name,
                    depends_on=list(n.depends_on),
                    revision=n.revision,
                    task_type_id=n.task_type_id,
                    revision_id=n.revision_id,
                )
                for n in found.nodes
            ],
            previous_batch_id=found.previous_batch.id if found.previous_batch else None,
            diff=[
                NodeDiff(node=d.node, status=d.status, reasons=list(d.reasons)) for d in found.diff
            ],
            sample=[
                PlannedRecipe(input_index=r.position, nodes=list(r.nodes))
                for r in (found.plan[:SAMPLE] if found.is_valid else [])
            ],
        )


@strawberry.type(description="createBatch refused the batch; the validation says why.")
class InvalidBatch(Error):
    validation: BatchValidation
