"""The schema: root types composed from per-area classes. Built once per process."""

from __future__ import annotations

import functools
from datetime import datetime

import strawberry
from graphql import GraphQLError
from strawberry import relay
from strawberry.extensions import ParserCache
from strawberry.relay.types import GlobalIDValueError
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext

from graphql_api.artifacts.mutations import ArtifactMutations
from graphql_api.artifacts.queries import ArtifactQueries
from graphql_api.auth.mutations import AuthMutations
from graphql_api.auth.queries import AuthQueries
from graphql_api.batches.mutations import BatchMutations
from graphql_api.batches.queries import BatchQueries
from graphql_api.comparisons.queries import ComparisonQueries
from graphql_api.compiled.extension import compiled_reads
from graphql_api.compiled.planner import Planner
from graphql_api.context import Info
from graphql_api.execution import LeafLists
from graphql_api.extensions import request_policy
from graphql_api.ids import split_id
from graphql_api.jobs.mutations import JobMutations
from graphql_api.jobs.queries import JobQueries
from graphql_api.meta.queries import MetaQueries
from graphql_api.prepared import PreparedReads
from graphql_api.scalars import DateTime
from graphql_api.settings import Limits
from graphql_api.subscriptions import RenderedEventExecutor, Subscription
from graphql_api.tasktypes.mutations import TaskTypeMutations
from graphql_api.tasktypes.queries import TaskTypeQueries
from graphql_api.workers.mutations import WorkerMutations
from graphql_api.workers.queries import WorkerQueries
from graphql_api.workspaces.mutations import WorkspaceMutations
from graphql_api.workspaces.queries import WorkspaceQueries


@strawberry.type
class Query(
    MetaQueries,
    AuthQueries,
    WorkspaceQueries,
    TaskTypeQueries,
    BatchQueries,
    ComparisonQueries,
    JobQueries,
    WorkerQueries,
    ArtifactQueries,
):
    @strawberry.field(
        description="Any object by its global id; null when the id names nothing you may"
        " read (a malformed id included)."
    )
    async def node(self, info: Info, id: strawberry.ID) -> relay.Node | None:
        found = split_id(id)
        if found is None:
            return None
        try:
            return await relay.GlobalID(*found).resolve_node(info, required=False)
        except GlobalIDValueError:  # a type name that is no node type of this schema
            return None


@strawberry.type
class Mutation(
    AuthMutations,
    WorkspaceMutations,
    TaskTypeMutations,
    BatchMutations,
    JobMutations,
    WorkerMutations,
    ArtifactMutations,
):
    pass


class BatchgraphSchema(strawberry.Schema):
    # The process's read planner and its documents answered whole (set by build_schema).
    planner: Planner | None = None
    prepared: PreparedReads | None = None

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """Log nothing here: the default logs every client mistake with its whole document.

        Unexpected errors are logged, in full and with the request id, where they
        are masked (graphql_api.errors.present).
        """


class Executor(LeafLists, RenderedEventExecutor):
    """graphql-core's executor, with lists of plain scalars completed in one loop and
    subscription events that arrive rendered passed through as they are."""


@functools.cache
def build_schema(limits: Limits) -> BatchgraphSchema:
    """The process's schema. Limits are part of it; a second, different one cannot be built."""
    if build_schema.cache_info().currsize > 0:
        raise RuntimeError("the schema is built once per process, with one set of limits")
    # Last: its on_execute runs innermost, after every other extension's checks.
    prepared = PreparedReads()
    reads = compiled_reads(None, prepared)
    schema = BatchgraphSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        execution_context_class=Executor,
        config=StrawberryConfig(
            batching_config={"max_operations": limits.max_batch_operations},
            relay_max_results=limits.max_page_size,
            scalar_map={datetime: DateTime},
        ),
        extensions=[
            # The policy first: it sets the parser's limits, then gates validation
            # (bounded, cached) and execution (cost, budget); see extensions.py.
            request_policy(limits),
            functools.partial(ParserCache, maxsize=1024),
            reads,
        ],
    )
    reads.planner = schema.planner = Planner(schema)
    schema.prepared = prepared
    return schema


def export_sdl() -> str:
    """The SDL committed as schema.graphql (limits do not change the SDL)."""
    return build_schema(Limits.from_env()).as_str() + "\n"
