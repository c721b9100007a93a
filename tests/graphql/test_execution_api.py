"""Execution over the API (issue 9): retryBatch, worker static metadata and task type
requirements (fleet and pull workers alike), the periodic tasks."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from db.enums import JobStatus, TokenRole
from db.models import Job
from db.session import Database
from db.uow import UnitOfWork
from domain.jobs.rules import Initiator
from domain.periodic.service import Scheduler
from domain.workers import service as workers
from tests.conftest import row_counts
from tests.factories import make_batch, make_task_type, make_token, move_job
from tests.graphql.conftest import Api
from tests.graphql.test_pull_workers import CLAIM, enabled_worker, gid, one_node


async def test_retry_batch_over_the_api(api: Api, db: Database) -> None:
    _, writer = await make_token(db, role=TokenRole.WRITER)
    await make_task_type(db, "t")
    batch = await make_batch(db, one_node("t", 3))
    async with db.read_session() as s:
        ids = list(await s.scalars(select(Job.id).where(Job.batch_id == batch.id)))
    async with UnitOfWork(db.write_session) as uow:
        for job_id in ids[:2]:
            await move_job(uow, job_id, JobStatus.RUNNING, Initiator.WORKER)
            await move_job(uow, job_id, JobStatus.FAILED, Initiator.WORKER)
        await uow.commit()
    retry = """mutation($id: ID!, $c: Boolean) { retryBatch(id: $id, includeCanceled: $c) {
      __typename ... on BatchRetried { retriedJobs batch { counters { failed queued } } }
      ... on Error { code } } }"""
    done = await api.data(retry, {"id": gid("Batch", batch.id)}, token=writer)
    assert done["retryBatch"] == {
        "__typename": "BatchRetried",
        "retriedJobs": 2,
        "batch": {"counters": {"failed": 0, "queued": 3}},
    }
    again = await api.data(retry, {"id": gid("Batch", batch.id)}, token=writer)
    assert again["retryBatch"]["retriedJobs"] == 0  # nothing failed any more
    reader = (await make_token(db, role=TokenRole.READER, owner="r"))[1]
    before = await row_counts(db)
    missing = await api.data(retry, {"id": gid("Batch", 999)}, token=writer)
    assert missing["retryBatch"] == {"__typename": "NotFound", "code": "NOT_FOUND"}
    status, errors = await api.errors(retry, {"id": gid("Batch", batch.id)}, token=reader)
    assert (status, errors[0]["extensions"]["code"]) == (403, "FORBIDDEN")
    assert await row_counts(db) == before


async def test_requirements_and_static_metadata_decide_which_pull_worker_claims(
    api: Api, db: Database
) -> None:
    admin = (await make_token(db, role=TokenRole.ADMIN))[1]
    created = await api.data(
        """mutation { createTaskType(input: {name: "arm-build",
        requirements: {arch: "aarch64"}}) { __typename
        ... on TaskTypeCreated { taskType { currentRevision { requirements } } } } }""",
        token=admin,
    )
    revision = created["createTaskType"]["taskType"]["currentRevision"]
    assert revision == {"requirements": {"arch": "aarch64"}}
    bad = await api.data(
        """mutation { createTaskType(input: {name: "x", requirements: [1]}) { __typename
        ... on ValidationFailed { violations { path } } } }""",
        token=admin,
    )
    assert bad["createTaskType"] == {
        "__typename": "ValidationFailed",
        "violations": [{"path": "$.requirements"}],
    }
    await make_batch(db, one_node("arm-build", 1))
    name, token = await enabled_worker(api, admin, "x86.lab", m={"arch": "x86_64"})
    nothing = await api.data(CLAIM, {"types": None}, token=token)
    assert nothing["claimJob"] == {"__typename": "JobClaim", "job": None}
    workers_list = await api.data(
        "{ workers(first: 10) { edges { node { id name } } } }", token=admin
    )
    [worker_id] = [
        e["node"]["id"] for e in workers_list["workers"]["edges"] if e["node"]["name"] == name
    ]
    set_meta = """mutation($w: ID!, $m: JSON!) { setWorkerMetadata(input: {worker: $w,
      metadata: $m}) { __typename ... on WorkerUpdated { worker { metadata staticMetadata } }
      ... on ValidationFailed { violations { path } } ... on Error { code } } }"""
    refused = await api.data(set_meta, {"w": worker_id, "m": "aarch64"}, token=admin)
    assert refused["setWorkerMetadata"]["__typename"] == "ValidationFailed"
    status, errors = await api.errors(set_meta, {"w": worker_id, "m": {}}, token=token)
    assert (status, errors[0]["extensions"]["code"]) == (403, "FORBIDDEN")  # admins only
    done = await api.data(set_meta, {"w": worker_id, "m": {"arch": "aarch64"}}, token=admin)
    assert done["setWorkerMetadata"]["worker"]["metadata"]["arch"] == "aarch64"  # static wins
    claimed = await api.data(CLAIM, {"types": None}, token=token)
    assert claimed["claimJob"]["job"]["status"] == "RUNNING"


async def test_periodic_tasks_are_listed_with_their_runs(api: Api, db: Database) -> None:
    status, errors = await api.errors("{ periodicTasks { name } }")
    assert (status, errors[0]["extensions"]["code"]) == (401, "UNAUTHENTICATED")
    reader = (await make_token(db, role=TokenRole.READER))[1]
    scheduler = Scheduler(
        lambda: UnitOfWork(db.write_session), runner="tests", now=lambda: datetime.now(UTC)
    )
    await scheduler.tick()
    found = await api.data(
        "{ periodicTasks { name description intervalSeconds runs runner lastError nextRunAt } }",
        token=reader,
    )
    by_name = {t["name"]: t for t in found["periodicTasks"]}
    assert {"counters.fold", "workers.lost", "jobs.overdue", "jobs.resend", "jobs.dispatch"} <= set(
        by_name
    )
    fold = by_name["counters.fold"]
    assert (fold["runs"], fold["runner"], fold["lastError"], fold["intervalSeconds"]) == (
        1,
        "tests",
        None,
        0.5,
    )
    assert fold["description"]


async def test_fleet_worker_static_metadata_is_set_by_an_admin(api: Api, db: Database) -> None:
    admin = (await make_token(db, role=TokenRole.ADMIN))[1]
    async with UnitOfWork(db.write_session) as uow:
        worker = await workers.register_fleet(
            uow, host="gpu1", concurrency=1, dynamic_metadata={"gpu": False, "load": 1}
        )
        await uow.commit()
    done = await api.data(
        """mutation($w: ID!) { setWorkerMetadata(input: {worker: $w, metadata: {gpu: true}}) {
        __typename ... on WorkerUpdated { worker { metadata } } } }""",
        {"w": gid("Worker", worker.id)},
        token=admin,
    )
    assert done["setWorkerMetadata"]["worker"]["metadata"] == {"gpu": True, "load": 1}
