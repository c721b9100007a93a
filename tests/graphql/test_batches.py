"""Batches and jobs over GraphQL, as a client uses them."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from sqlalchemy import select

from db.enums import JobStatus, TokenRole
from db.models import Job
from db.session import Database
from db.uow import UnitOfWork
from domain.jobs.rules import Initiator
from tests.conftest import StatementCounter, row_counts
from tests.factories import (
    RESIZE_SCHEMA,
    make_batch,
    make_task_type,
    make_token,
    move_job,
    two_node_definition,
)
from tests.graphql.conftest import Api

ITEMS = [{"url": f"https://x/{i}.png", "width": 10} for i in range(3)]

CREATE = """mutation($input: BatchInput!, $dry: Boolean) {
  createBatch(input: $input, dryRun: $dry) {
    __typename
    ... on BatchCreated { batch { id title isCreationDone rootBatch { id } } }
    ... on BatchDryRun { validation { isValid plannedRecipes plannedJobs
        jobsByNode { node jobs } sample { inputIndex nodes } } }
    ... on InvalidBatch { code message validation { isValid
        errors { name description path node inputIndex } } }
    ... on NotFound { code message }
  }
}"""


def gid(kind: str, pk: int) -> str:
    return base64.b64encode(f"{kind}:{pk}".encode()).decode()


@pytest.fixture
async def writer(db: Database) -> str:
    await make_task_type(db, "resize", parameters_schema=RESIZE_SCHEMA)
    await make_task_type(db, "thumb")
    return (await make_token(db, role=TokenRole.WRITER, owner="wes"))[1]


def batch_input(**over: Any) -> dict[str, Any]:
    return {"title": "Resize March", "definition": two_node_definition(ITEMS), **over}


async def test_create_then_explore_a_batch(api: Api, db: Database, writer: str) -> None:
    created = (await api.data(CREATE, {"input": batch_input()}, token=writer))["createBatch"]
    assert created["__typename"] == "BatchCreated"
    batch = created["batch"]
    # Up to 1,000 items, recipes and jobs are created with the batch (more: in chunks).
    assert batch["isCreationDone"] is True
    assert batch["rootBatch"]["id"] == batch["id"]  # a new batch is its own root

    query = """query($id: ID!) { batch(id: $id) {
        title isCreationDone createdBy workspace { name }
        counters { jobsTotal queued blocked recipesEstimated recipesTotal recipesCompleted }
        metrics { node jobsTotal queued blocked taskTypeRevision { revision }
                  runDuration { min { seconds iso } avg { iso } } }
        recipes(first: 2) { totalCount edges { node { inputIndex item isCompleted
            jobs { edges { node { node status } } } } } }
        jobs(first: 10, filter: {node: "thumb"}) { totalCount edges { node { id node status
            parameters taskType { name } dependencies { node } dependents { node }
            events { edges { node { eventId fromStatus toStatus reason } } } } } }
        supersededBatch { id } nextBatch { id } chain { title }
    } }"""
    found = (await api.data(query, {"id": batch["id"]}, token=writer))["batch"]
    assert found["isCreationDone"] is True
    assert found["createdBy"] == "wes"
    assert found["counters"] == {
        "jobsTotal": 6,
        "queued": 3,  # dispatched as soon as they were created
        "blocked": 3,
        "recipesEstimated": 3,
        "recipesTotal": 3,
        "recipesCompleted": 0,
    }
    assert [(m["node"], m["queued"], m["blocked"]) for m in found["metrics"]] == [
        ("resize", 3, 0),
        ("thumb", 0, 3),
    ]
    assert found["metrics"][0]["runDuration"] == {"min": None, "avg": None}
    assert found["recipes"]["totalCount"] == 3
    first_recipe = found["recipes"]["edges"][0]["node"]
    assert (first_recipe["inputIndex"], first_recipe["item"]) == (0, ITEMS[0])
    assert first_recipe["isCompleted"] is False
    thumbs = found["jobs"]
    assert thumbs["totalCount"] == 3
    thumb = thumbs["edges"][0]["node"]
    assert thumb["status"] == "BLOCKED"
    assert thumb["parameters"] == {"source": ITEMS[0]["url"], "size": 64}
    assert thumb["taskType"] == {"name": "thumb"}
    assert thumb["dependencies"] == [{"node": "resize"}]
    assert thumb["dependents"] == []
    assert [(e["node"]["fromStatus"], e["node"]["toStatus"]) for e in thumb["events"]["edges"]] == [
        (None, "BLOCKED")
    ]
    assert (found["supersededBatch"], found["nextBatch"]) == (None, None)
    assert found["chain"] == [{"title": "Resize March"}]

    job = (
        await api.data(
            """query($id: ID!) { job(id: $id) { node batch { title }
        recipe { inputIndex } } }""",
            {"id": thumb["id"]},
            token=writer,
        )
    )["job"]
    assert job == {"node": "thumb", "batch": {"title": "Resize March"}, "recipe": {"inputIndex": 0}}


@pytest.mark.parametrize(
    ("definition", "error"),
    [
        ("not an object", "INVALID_BATCH_DEFINITION"),
        (
            {
                "recipe": {"nodes": [{"name": "a", "taskType": "resize", "dependsOn": ["a"]}]},
                "inputs": [{}],
            },
            "INVALID_BATCH_DEFINITION",
        ),
        ({"recipe": {"nodes": [{"name": "a", "taskType": "resize"}]}, "inputs": []}, "NO_RECIPES"),
        (two_node_definition([{"url": 1, "width": 0}]), "PARAMETERS_INVALID"),
        (two_node_definition([{}] * 100_001), "TOO_MANY_INPUTS"),
    ],
)
async def test_invalid_batches_are_refused_with_their_errors_and_write_nothing(
    api: Api, db: Database, writer: str, definition: Any, error: str
) -> None:
    before = await row_counts(db)
    payload = (await api.data(CREATE, {"input": batch_input(definition=definition)}, token=writer))[
        "createBatch"
    ]
    assert payload["__typename"] == "InvalidBatch"
    assert payload["code"] == "VALIDATION_FAILED"
    assert payload["validation"]["isValid"] is False
    assert payload["validation"]["errors"][0]["name"] == error
    assert await row_counts(db) == before
    check = await api.data(
        """query($input: BatchInput!) { validateBatch(input: $input) {
        ... on BatchValidation { isValid errors { name } } } }""",
        {"input": batch_input(definition=definition)},
        token=writer,
    )
    assert check["validateBatch"]["errors"][0]["name"] == error


async def test_parameter_errors_name_the_item_node_and_path(
    api: Api, db: Database, writer: str
) -> None:
    payload = (
        await api.data(
            CREATE,
            {
                "input": batch_input(
                    definition=two_node_definition([ITEMS[0], {"url": "u", "width": 0}])
                )
            },
            token=writer,
        )
    )["createBatch"]
    assert payload["validation"]["errors"] == [
        {
            "name": "PARAMETERS_INVALID",
            "description": "0 is less than the minimum of 1",
            "path": "$.width",
            "node": "resize",
            "inputIndex": 1,
        }
    ]


async def test_dry_run_writes_nothing(api: Api, db: Database, writer: str) -> None:
    before = await row_counts(db)
    payload = (await api.data(CREATE, {"input": batch_input(), "dry": True}, token=writer))[
        "createBatch"
    ]
    assert payload["__typename"] == "BatchDryRun"
    assert payload["validation"]["plannedJobs"] == 6
    assert payload["validation"]["sample"][0] == {"inputIndex": 0, "nodes": ["resize", "thumb"]}
    assert await row_counts(db) == before


async def test_unknown_workspace_is_not_found(api: Api, db: Database, writer: str) -> None:
    payload = (await api.data(CREATE, {"input": batch_input(workspace="nope")}, token=writer))[
        "createBatch"
    ]
    assert payload["__typename"] == "NotFound"


@pytest.mark.parametrize("role", [TokenRole.READER, TokenRole.WORKER, None])
async def test_mutations_need_a_writer(
    api: Api, db: Database, writer: str, role: TokenRole | None
) -> None:
    token = (await make_token(db, role=role))[1] if role else None
    batch = await make_batch(db, two_node_definition(ITEMS))
    before = await row_counts(db)
    for document, variables in [
        (CREATE, {"input": batch_input()}),
        (
            "mutation($id: ID!) { cancelBatch(id: $id) { __typename } }",
            {"id": gid("Batch", batch.id)},
        ),
        (
            'mutation($id: ID!) { editBatch(input: {batch: $id, title: "x"}) { __typename } }',
            {"id": gid("Batch", batch.id)},
        ),
        (
            "mutation($id: ID!) { reprocessBatch(input: {rootBatch: $id}) { __typename } }",
            {"id": gid("Batch", batch.id)},
        ),
    ]:
        status, errors = await api.errors(document, variables, token=token)
        expected = "FORBIDDEN" if role else "UNAUTHENTICATED"
        assert errors[0]["extensions"]["code"] == expected
        assert status == (403 if role else 401)
    assert await row_counts(db) == before


async def test_edit_cancel_and_job_transitions(api: Api, db: Database, writer: str) -> None:
    batch = await make_batch(db, two_node_definition(ITEMS))
    bid = gid("Batch", batch.id)
    edited = await api.data(
        """mutation($id: ID!) { editBatch(input: {batch: $id,
        title: "Renamed", priority: 5}) { __typename ... on BatchUpdated { batch { title
        priority } } } }""",
        {"id": bid},
        token=writer,
    )
    assert edited["editBatch"]["batch"] == {"title": "Renamed", "priority": 5}
    bad = await api.data(
        """mutation($id: ID!) { editBatch(input: {batch: $id, priority: 99999})
        { __typename ... on ValidationFailed { violations { path } } } }""",
        {"id": bid},
        token=writer,
    )
    assert bad["editBatch"] == {
        "__typename": "ValidationFailed",
        "violations": [{"path": "$.priority"}],
    }

    async with db.read_session() as s:
        resize = await s.scalar(
            select(Job).where(Job.batch_id == batch.id, Job.node == "resize").order_by(Job.id)
        )
    assert resize is not None
    async with UnitOfWork(db.write_session) as uow:  # a worker completes one job
        for target, by in (
            (JobStatus.RUNNING, Initiator.WORKER),
            (JobStatus.COMPLETED, Initiator.WORKER),
        ):
            await move_job(uow, resize.id, target, by)
        await uow.commit()
    refused = await api.data(
        """mutation($id: ID!) { cancelJob(id: $id) { __typename
        ... on Error { code message } } }""",
        {"id": gid("Job", resize.id)},
        token=writer,
    )
    assert refused["cancelJob"]["__typename"] == "InvalidTransition"
    assert refused["cancelJob"]["code"] == "INVALID_TRANSITION"

    canceled = await api.data(
        """mutation($id: ID!) { cancelBatch(id: $id, reason: "oops") {
        __typename ... on BatchCanceled { canceledJobs batch { canceledAt
        counters { completed canceled pending blocked } } } } }""",
        {"id": bid},
        token=writer,
    )
    result = canceled["cancelBatch"]
    assert result["canceledJobs"] == 5
    assert result["batch"]["counters"] == {
        "completed": 1,
        "canceled": 5,
        "pending": 0,
        "blocked": 0,
    }
    again = await api.data(
        """mutation($id: ID!) { cancelBatch(id: $id) { __typename } }""", {"id": bid}, token=writer
    )
    assert again["cancelBatch"]["__typename"] == "InvalidTransition"

    jobs_list = await api.data(
        """query($id: ID!) { jobs(batch: $id, filter: {statuses:
        [CANCELED], node: "resize"}) { totalCount edges { node { id } } } }""",
        {"id": bid},
        token=writer,
    )
    retry_id = jobs_list["jobs"]["edges"][0]["node"]["id"]
    assert jobs_list["jobs"]["totalCount"] == 2
    retried = await api.data(
        """mutation($id: ID!) { retryJob(id: $id) { __typename
        ... on JobUpdated { job { status attempt } } } }""",
        {"id": retry_id},
        token=writer,
    )
    assert retried["retryJob"]["job"] == {"status": "QUEUED", "attempt": 2}


async def test_reprocess_a_chain(api: Api, db: Database, writer: str) -> None:
    first = await make_batch(db, two_node_definition(ITEMS))
    reprocess = """mutation($root: ID!, $dry: Boolean) {
      reprocessBatch(input: {rootBatch: $root, rerun: ALL}, dryRun: $dry) { __typename
        ... on BatchCreated { batch { id title supersededBatch { id } rootBatch { id } } }
        ... on BatchDryRun { validation { plannedRecipes previousBatch { id }
            diff { node status reasons } } }
        ... on InvalidBatch { validation { errors { name } } } } }"""
    root = gid("Batch", first.id)
    dry = (await api.data(reprocess, {"root": root, "dry": True}, token=writer))["reprocessBatch"]
    assert dry["validation"]["plannedRecipes"] == 3
    assert dry["validation"]["previousBatch"] == {"id": root}
    assert [d["status"] for d in dry["validation"]["diff"]] == ["UNCHANGED", "UNCHANGED"]

    made = (await api.data(reprocess, {"root": root}, token=writer))["reprocessBatch"]
    assert made["batch"]["title"] == "b"  # the previous batch's title by default
    assert made["batch"]["supersededBatch"] == {"id": root}
    assert made["batch"]["rootBatch"] == {"id": root}
    # (Three recipes are created with the batch; a chain whose latest batch is still
    # creating makes re-processing wait: tests/services/test_jobs.py.)
    # A non-root id does not name a chain.
    not_root = (await api.data(reprocess, {"root": made["batch"]["id"]}, token=writer))[
        "reprocessBatch"
    ]
    assert not_root["validation"]["errors"] == [{"name": "PREV_BATCH_NOT_FOUND"}]

    chain = await api.data(
        """query($id: ID!) { batch(id: $id) { isSuperseded supersededAt
        nextBatch { id } chain { id } } }""",
        {"id": root},
        token=writer,
    )
    assert chain["batch"]["isSuperseded"] is True
    assert chain["batch"]["nextBatch"] == {"id": made["batch"]["id"]}
    assert [b["id"] for b in chain["batch"]["chain"]] == [root, made["batch"]["id"]]


async def test_listing_filters_and_orders(api: Api, db: Database, writer: str) -> None:
    for title in ["beta", "Alpha", "gamma"]:
        await make_batch(db, two_node_definition(ITEMS[:1]), title=title)
    query = """query($order: BatchOrderBy, $filter: BatchFilter, $after: String) {
        batches(orderBy: $order, filter: $filter, first: 2, after: $after) { totalCount
        pageInfo { hasNextPage endCursor } edges { node { title } } } }"""
    by_title = (await api.data(query, {"order": {"field": "TITLE"}}, token=writer))["batches"]
    assert [e["node"]["title"] for e in by_title["edges"]] == ["Alpha", "beta"]
    rest = (
        await api.data(
            query,
            {"order": {"field": "TITLE"}, "after": by_title["pageInfo"]["endCursor"]},
            token=writer,
        )
    )["batches"]
    assert [e["node"]["title"] for e in rest["edges"]] == ["gamma"]
    newest = (
        await api.data(query, {"order": {"field": "CREATED", "direction": "DESC"}}, token=writer)
    )["batches"]
    assert [e["node"]["title"] for e in newest["edges"]] == ["gamma", "Alpha"]
    older = (
        await api.data(
            query,
            {
                "order": {"field": "CREATED", "direction": "DESC"},
                "after": newest["pageInfo"]["endCursor"],
            },
            token=writer,
        )
    )["batches"]
    assert [e["node"]["title"] for e in older["edges"]] == ["beta"]
    by_type = await api.data(
        query,
        {"filter": {"taskType": "thumb", "isSuperseded": False, "isCreationDone": True}},
        token=writer,
    )
    assert by_type["batches"]["totalCount"] == 3
    none = await api.data(query, {"filter": {"taskType": "nope"}}, token=writer)
    assert none["batches"]["totalCount"] == 0


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "resolvers"])
async def test_nested_lists_cost_the_same_number_of_statements_at_any_size(
    api: Api,
    resolver_api: Api,
    db: Database,
    writer: str,
    sql_counter: StatementCounter,
    compiled: bool,
) -> None:
    api = api if compiled else resolver_api
    query = """query($b: Int, $j: Int) { batches(first: $b) { edges { node { title
        jobs(first: $j) { edges { node { status taskType { name }
            events(first: 5) { edges { node { eventId toStatus } } } } } }
        chain { title } counters { jobsTotal } metrics { node }
        recipes(first: $j) { totalCount edges { node { inputIndex
            jobs(first: 2) { totalCount edges { node { node recipe { inputIndex } } } } } } }
    } } } }"""

    async def statements(b: int, j: int) -> int:
        sql_counter.statements.clear()
        data = await api.data(query, {"b": b, "j": j}, token=writer)
        assert len(data["batches"]["edges"]) == b
        assert all(len(e["node"]["jobs"]["edges"]) == min(j, 6) for e in data["batches"]["edges"])
        return sql_counter.count

    for i in range(4):
        await make_batch(db, two_node_definition(ITEMS), title=f"b{i}")
    await api.data("{ viewer { owner } }", token=writer)  # records the token's use once
    small = await statements(1, 1)
    large = await statements(4, 6)
    assert small == large, sql_counter.statements
    if compiled:  # one statement for the root field (the token is cached)
        assert large == 1, sql_counter.statements


async def test_task_type_queue_lists_the_oldest_waiting_jobs(
    api: Api, db: Database, writer: str
) -> None:
    first = await make_batch(db, two_node_definition(ITEMS), title="first")
    await make_batch(db, two_node_definition(ITEMS), title="second")
    async with db.read_session() as s:
        oldest = list(
            await s.scalars(
                select(Job.id).where(Job.node == "resize").order_by(Job.created_at, Job.id)
            )
        )
    data = await api.data(
        """{ taskType(name: "resize") { queue(first: 4) { id node status
        batch { title } } } }""",
        token=writer,
    )
    queue = data["taskType"]["queue"]
    assert [q["id"] for q in queue] == [gid("Job", i) for i in oldest[:4]]
    assert {q["status"] for q in queue} == {"QUEUED"}
    assert [q["batch"]["title"] for q in queue] == ["first"] * 3 + ["second"]
    # thumb's jobs are BLOCKED, not waiting; a canceled batch's jobs leave the queue.
    thumbs = await api.data('{ taskType(name: "thumb") { queue { id } } }', token=writer)
    assert thumbs["taskType"]["queue"] == []
    await api.data(
        "mutation($id: ID!) { cancelBatch(id: $id) { __typename } }",
        {"id": gid("Batch", first.id)},
        token=writer,
    )
    after = await api.data('{ taskType(name: "resize") { queue(first: 10) { id } } }', token=writer)
    assert len(after["taskType"]["queue"]) == 3
    response = await api.post(
        '{ taskType(name: "resize") { queue(first: 500) { id } } }', token=writer
    )
    # taskType is nullable: partial data (null), so 200 with the coded error.
    assert response.json()["data"] == {"taskType": None}
    assert response.json()["errors"][0]["extensions"]["code"] == "LIMIT_EXCEEDED"


@pytest.mark.parametrize(("compiled", "statements"), [(True, 1), (False, 2)])
async def test_queues_of_a_task_type_list_load_together(
    api: Api,
    resolver_api: Api,
    db: Database,
    writer: str,
    sql_counter: StatementCounter,
    compiled: bool,
    statements: int,
) -> None:
    api = api if compiled else resolver_api
    await make_batch(db, two_node_definition(ITEMS))
    for i in range(5):
        await make_task_type(db, f"extra-{i}")
    await api.data("{ viewer { owner } }", token=writer)
    sql_counter.statements.clear()
    data = await api.data(
        "{ taskTypes { edges { node { name queue(first: 2) { id } } } } }", token=writer
    )
    queues = {e["node"]["name"]: len(e["node"]["queue"]) for e in data["taskTypes"]["edges"]}
    assert queues["resize"] == 2
    assert queues["thumb"] == 0
    # compiled: one statement; resolvers: the page, then every queue at once
    assert sql_counter.count == statements, sql_counter.statements


async def test_a_definition_cannot_be_edited(api: Api, db: Database, writer: str) -> None:
    batch = await make_batch(db, two_node_definition(ITEMS))
    before = await row_counts(db)
    status, errors = await api.errors(
        """mutation($id: ID!) { editBatch(input: {batch: $id, definition: {inputs: []}}) {
        __typename } }""",
        {"id": gid("Batch", batch.id)},
        token=writer,
    )
    assert (status, errors[0]["extensions"]["code"]) == (400, "BAD_REQUEST")
    assert await row_counts(db) == before


async def test_workers_need_a_token_and_show_their_jobs(
    api: Api, db: Database, writer: str
) -> None:
    from db.uow import UnitOfWork
    from domain.workers import service as workers

    async with UnitOfWork(db.write_session) as uow:
        worker = await workers.register_fleet(
            uow, host="gpu1.lab", concurrency=4, dynamic_metadata={"load": [0.5]}
        )
        await uow.commit()
    batch = await make_batch(db, two_node_definition(ITEMS))
    async with db.read_session() as s:
        first = await s.scalar(select(Job.id).where(Job.batch_id == batch.id).order_by(Job.id))
    assert first is not None
    async with UnitOfWork(db.write_session) as uow:
        await move_job(uow, first, JobStatus.RUNNING, Initiator.WORKER, worker=worker.name)
        await uow.commit()
    status, errors = await api.errors("{ workers { totalCount } }")
    assert (status, errors[0]["extensions"]["code"]) == (401, "UNAUTHENTICATED")
    data = await api.data(
        """{ workers(connected: true) { totalCount edges { node { name
        isConnected concurrency metadata jobs { edges { node { status node } } } } } }
        worker(name: "nope") { name } }""",
        token=writer,
    )
    [node] = [e["node"] for e in data["workers"]["edges"]]
    assert (node["name"], node["isConnected"], node["concurrency"]) == ("gpu1-lab", True, 4)
    assert node["metadata"] == {"load": [0.5]}
    assert node["jobs"]["edges"] == [{"node": {"status": "RUNNING", "node": "resize"}}]
    assert data["worker"] is None


async def test_a_worker_by_global_id(api: Api, db: Database, writer: str) -> None:
    from db.uow import UnitOfWork
    from domain.workers import service as workers

    async with UnitOfWork(db.write_session) as uow:
        found = await workers.register_fleet(uow, host="a.lab", concurrency=1, dynamic_metadata={})
        await uow.commit()
    query = "query($id: ID!) { node(id: $id) { ... on Worker { name kind } } }"
    data = await api.data(query, {"id": gid("Worker", found.id)}, token=writer)
    assert data["node"] == {"name": "a-lab", "kind": "FLEET"}
    status, errors = await api.errors(query, {"id": gid("Worker", found.id)})
    # node is nullable: partial data (null), so 200 with the coded error.
    assert (status, errors[0]["extensions"]["code"]) == (200, "UNAUTHENTICATED")


VALIDATE = """query($input: BatchInput!) { validateBatch(input: $input) {
  ... on BatchValidation { isValid errors { name path } diff { node status } } } }"""


async def test_validate_a_reprocessing_with_another_task_type_has_no_diff(
    api: Api, db: Database, writer: str
) -> None:
    """MISMATCHED_RECIPE alone: a node diff across two different recipes means nothing."""
    first = await make_batch(db, two_node_definition(ITEMS))

    swapped = {
        "nodes": [
            {"name": "resize", "taskType": "thumb"},
            {"name": "thumb", "taskType": "thumb", "dependsOn": ["resize"]},
        ]
    }
    found = await api.data(
        VALIDATE,
        {
            "input": {
                "title": "again",
                "definition": {"recipe": swapped},
                "previousBatch": {"rootBatch": gid("Batch", first.id)},
            }
        },
        token=writer,
    )
    validation = found["validateBatch"]
    assert validation["isValid"] is False
    assert [e["name"] for e in validation["errors"]] == ["MISMATCHED_RECIPE"]
    assert validation["diff"] == []


@pytest.mark.parametrize("root", ["not-an-id", "QmF0Y2g6OTk5OTk5"])
async def test_a_missing_previous_batch_names_the_real_input_field(
    api: Api, db: Database, writer: str, root: str
) -> None:
    found = await api.data(
        VALIDATE,
        {"input": {"title": "again", "previousBatch": {"rootBatch": root}}},
        token=writer,
    )
    assert found["validateBatch"]["errors"] == [
        {"name": "PREV_BATCH_NOT_FOUND", "path": "$.previousBatch.rootBatch"}
    ]
    # The path names a field of the input type as the schema spells it.
    fields = await api.data('{ __type(name: "PreviousBatchInput") { inputFields { name } } }')
    assert "rootBatch" in {f["name"] for f in fields["__type"]["inputFields"]}


async def test_the_default_batch_order_is_stated_in_the_schema(api: Api) -> None:
    found = await api.data("{ __schema { queryType { fields { name description } } } }")
    [batches] = [f for f in found["__schema"]["queryType"]["fields"] if f["name"] == "batches"]
    assert "Without orderBy: by id, ascending" in batches["description"]


async def test_malformed_ids_are_ids_that_do_not_exist(api: Api, db: Database, writer: str) -> None:
    """Lookups answer null and mutations their NotFound arm, never a top-level error."""
    for bad in (
        "not-an-id",
        "",
        "%%%",
        gid("Job", 0),
        gid("Nope", 1),
        base64.b64encode(b"Job:x").decode(),
    ):
        found = await api.post(
            """query($id: ID!) { job(id: $id) { id } batch(id: $id) { id }
            node(id: $id) { id } }""",
            {"id": bad},
            token=writer,
        )
        assert found.status_code == 200, found.text
        assert found.json()["data"] == {"job": None, "batch": None, "node": None}, bad
        assert "errors" not in found.json()
        for mutation in (
            "cancelJob(id: $id)",
            "retryJob(id: $id)",
            "cancelBatch(id: $id)",
        ):
            done = await api.data(
                f"mutation($id: ID!) {{ m: {mutation} {{ __typename ... on Error {{ code }} }} }}",
                {"id": bad},
                token=writer,
            )
            assert done["m"] == {"__typename": "NotFound", "code": "NOT_FOUND"}, (bad, mutation)
    # Written literally in the document too.
    literal = await api.data('query { job(id: "not-an-id") { id } } ', token=writer)
    assert literal == {"job": None}
    canceled = await api.data(
        'mutation { cancelJob(id: "not-an-id") { __typename } }', token=writer
    )
    assert canceled == {"cancelJob": {"__typename": "NotFound"}}


async def test_a_finished_batch_cannot_be_canceled(api: Api, db: Database, writer: str) -> None:
    """Nothing left to cancel: INVALID_TRANSITION, and the batch is not marked canceled."""
    batch = await make_batch(
        db, {"recipe": {"nodes": [{"name": "n", "taskType": "thumb"}]}, "inputs": [{}]}
    )
    async with UnitOfWork(db.write_session) as uow:
        [job] = (await uow.session.scalars(select(Job).where(Job.batch_id == batch.id))).all()
        for target in (JobStatus.RUNNING, JobStatus.COMPLETED):
            await move_job(uow, job.id, target, Initiator.WORKER)
        await uow.commit()
    before = await row_counts(db)
    found = await api.data(
        """mutation($id: ID!) { cancelBatch(id: $id) { __typename ... on Error { code message }
        } }""",
        {"id": gid("Batch", batch.id)},
        token=writer,
    )
    assert found["cancelBatch"]["code"] == "INVALID_TRANSITION"
    assert "nothing to cancel" in found["cancelBatch"]["message"]
    assert await row_counts(db) == before
    after = await api.data(
        "query($id: ID!) { batch(id: $id) { canceledAt } }",
        {"id": gid("Batch", batch.id)},
        token=writer,
    )
    assert after["batch"]["canceledAt"] is None
