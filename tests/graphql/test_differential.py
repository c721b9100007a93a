"""The compiled read path against the resolvers (the reference), for every role: the test
suite's query documents, the README's, and documents generated from the schema. Every
answer must be identical: HTTP status, ``data`` and ``errors``."""

from __future__ import annotations

import os
import random
from collections import Counter
from typing import Any

import graphql
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import queries

from db.session import Database
from graphql_api.schema import build_schema, export_sdl
from graphql_api.settings import Limits
from tests.graphql.conftest import Api
from tests.graphql.differential import (
    ROLES,
    Seed,
    both,
    first_difference,
    planner,
    readme_documents,
    seed,
    suite_documents,
    variable_sets,
)

# Generated documents per run: a fixed number (derandomized unless DIFFERENTIAL_RANDOM is
# set), so what is checked never depends on the machine's speed.
GENERATED = 200
# Root fields the planner leaves to their resolvers on purpose: domain validation, and
# the chain comparison, whose changes and flags domain/metrics/rules.py decides (it
# reads two statements, never the jobs). Artifacts are not compiled yet: their
# resolvers batch with DataLoaders and lineage is one statement of its own.
NOT_COMPILED = {"validateBatch", "validateParameters", "batchComparison", "artifact", "artifacts"}


@pytest.fixture
async def seeded(api: Api, db: Database) -> Seed:
    return await seed(api, db)


async def check(api: Api, reference: Api, query: str, variables: Any, data: Seed) -> None:
    failed = sum(planner().stats["failed"].values())
    for role in ROLES:
        compiled, resolved = await both(api, reference, query, variables, data.tokens[role])
        assert compiled == resolved, (
            f"role {role}, variables {variables}: {first_difference(compiled, resolved)}\n{query}"
        )
    # No compiled statement failed (which would have sent the field to the resolvers).
    assert sum(planner().stats["failed"].values()) == failed, planner().last_failure


async def test_every_query_of_the_test_suite(api: Api, resolver_api: Api, seeded: Seed) -> None:
    schema = build_schema(Limits())._schema
    documents = suite_documents(schema)
    assert len(documents) >= 40, len(documents)  # the extraction found the suite's documents
    stats = planner().stats
    before = Counter(stats["compiled"])
    rng = random.Random(10)
    for query in documents:
        for variables in variable_sets(schema, query, seeded, rng, 3):
            await check(api, resolver_api, query, variables, seeded)
    compiled = Counter(stats["compiled"]) - before
    roots = set(schema.query_type.fields) - NOT_COMPILED  # type: ignore[union-attr]
    used = {
        n.name.value
        for q in documents
        for d in graphql.parse(q).definitions
        if isinstance(d, graphql.OperationDefinitionNode)
        for n in d.selection_set.selections
        if isinstance(n, graphql.FieldNode)
    }
    # Every root field the suite asks for was answered by the planner at least once.
    assert (roots & used) - set(compiled) == set(), dict(compiled)


FIELDS_ADDED_LATER = [
    # Fleet workers have no token: tokenId null on both paths.
    "{ workers(first: 20) { edges { node { name kind tokenId isTokenEnabled isConnected } } } }",
    # waitingReason over the seed's connected and gone workers, every status.
    """{ batches(first: 10) { edges { node { title jobs(first: 30) { edges { node {
         status waitingReason taskTypeRevision { requirements } } } } } } } }""",
]


async def test_fields_added_after_the_planner(api: Api, resolver_api: Api, seeded: Seed) -> None:
    stats = planner().stats
    before = Counter(stats["compiled"])
    for query in FIELDS_ADDED_LATER:
        await check(api, resolver_api, query, None, seeded)
    assert {"workers", "batches"} <= set(Counter(stats["compiled"]) - before)


async def test_the_readme_operations(api: Api, resolver_api: Api, seeded: Seed) -> None:
    schema = build_schema(Limits())._schema
    documents = readme_documents()
    assert len(documents) >= 5
    rng = random.Random(11)
    for query in documents:
        for variables in variable_sets(schema, query, seeded, rng, 4):
            await check(api, resolver_api, query, variables, seeded)


async def test_documents_generated_from_the_schema(
    api: Api, resolver_api: Api, seeded: Seed
) -> None:
    """Random valid queries (hypothesis-graphql), a fixed number; ids are the seed's,
    page sizes mostly small, so that most of them reach the data."""
    strategy = queries(
        export_sdl(),
        custom_scalars={
            "DateTime": st.sampled_from(
                [
                    graphql.StringValueNode(value=v)
                    for v in ("2020-01-01T00:00:00+00:00", "2999-01-01T00:00:00Z")
                ]
            ),
            "JSON": st.just(graphql.ObjectValueNode(fields=())),
        },
        allow_x00=False,
    )
    documents: list[str] = []

    @settings(
        max_examples=GENERATED,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        derandomize=os.environ.get("DIFFERENTIAL_RANDOM") is None,
    )
    @given(strategy)
    def collect(query: str) -> None:
        documents.append(query)

    collect()
    rng = random.Random(12)
    stats = planner().stats
    before = Counter(stats["compiled"])
    for query in documents:
        document = _with_seeded_values(query, seeded, rng)
        await check(api, resolver_api, document, None, seeded)
    ran = len(documents)
    compiled = Counter(stats["compiled"]) - before
    assert ran >= 20, ran
    assert sum(compiled.values()) >= ran, compiled  # most generated root fields compiled


class _Seeded(graphql.Visitor):
    def __init__(self, data: Seed, rng: random.Random) -> None:
        super().__init__()
        self.data = data
        self.rng = rng

    def enter_argument(self, node: graphql.ArgumentNode, *_: Any) -> Any:
        name = node.name.value
        if name in ("id", "batch", "job", "rootBatch", "taskType") and isinstance(
            node.value, graphql.StringValueNode
        ):
            pool = self.data.all_ids() + self.data.ids.get("Other", [])
            return graphql.ArgumentNode(
                name=node.name, value=graphql.StringValueNode(value=self.rng.choice(pool))
            )
        if name in ("first", "number") and isinstance(node.value, graphql.IntValueNode):
            value = self.rng.choice([0, 1, 2, 3, 5, 10, 101, -1, int(node.value.value) % 200])
            return graphql.ArgumentNode(
                name=node.name, value=graphql.IntValueNode(value=str(value))
            )
        if name in ("name", "workspace") and isinstance(node.value, graphql.StringValueNode):
            pool = [n for names in self.data.names.values() for n in names]
            return graphql.ArgumentNode(
                name=node.name, value=graphql.StringValueNode(value=self.rng.choice(pool))
            )
        return None


def _with_seeded_values(query: str, data: Seed, rng: random.Random) -> str:
    return graphql.print_ast(graphql.visit(graphql.parse(query), _Seeded(data, rng)))
