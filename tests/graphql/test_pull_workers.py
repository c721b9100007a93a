"""External pull workers over GraphQL (SPEC §4): register, enable, heartbeat, claim,
complete, fail — with a worker token."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import pytest
from sqlalchemy import select

from db.enums import JobStatus, TokenRole
from db.models import Job
from db.session import Database
from tests.conftest import row_counts
from tests.factories import make_batch, make_task_type, make_token
from tests.graphql.conftest import Api

REGISTER = """mutation($host: String!, $c: Int, $m: JSON) {
  registerWorker(input: {host: $host, concurrency: $c, metadata: $m}) { __typename
    ... on WorkerRegistered { token tokenId worker { name kind isConnected tokenId
      isTokenEnabled } }
    ... on ValidationFailed { violations { path } } } }"""
CLAIM = """mutation($types: [String!], $running: [ID!]) {
  claimJob(taskTypes: $types, running: $running) { __typename
    ... on JobClaim { job { id node status attempt worker parameters } } } }"""
COMPLETE = """mutation($job: ID!, $result: JSON!) { completeJob(job: $job, result: $result) {
  __typename ... on JobFinished { job { status result } }
  ... on Error { code message } ... on SchemaMismatch { violations { path } } } }"""
FAIL = """mutation($job: ID!, $cat: FailureCategory!) { failJob(job: $job, code: "NO_DISK",
  message: "disk full", category: $cat) { __typename ... on JobFinished { job { status attempt
  error { code category } } } ... on Error { code } } }"""


def gid(kind: str, pk: int) -> str:
    return base64.b64encode(f"{kind}:{pk}".encode()).decode()


async def enabled_worker(api: Api, admin: str, host: str, **variables: Any) -> tuple[str, str]:
    """Register, then have the admin enable the worker's token. Returns (name, token)."""
    found = (await api.data(REGISTER, {"host": host, **variables}))["registerWorker"]
    assert found["__typename"] == "WorkerRegistered"
    name, token = found["worker"]["name"], found["token"]
    status, errors = await api.errors("mutation { workerHeartbeat { __typename } }", token=token)
    assert (status, errors[0]["extensions"]["code"]) == (401, "UNAUTHENTICATED")  # disabled
    # What the admin needs is in the answer: the token's id, also on the worker.
    token_id = found["tokenId"]
    assert found["worker"]["tokenId"] == token_id
    assert found["worker"]["isTokenEnabled"] is False
    tokens = await api.data(
        "{ tokens(first: 100) { edges { node { id owner enabled } } } }", token=admin
    )
    assert {"id": token_id, "owner": f"worker {name}", "enabled": False} in [
        e["node"] for e in tokens["tokens"]["edges"]
    ]
    await api.data(
        """mutation($id: ID!) { setTokenEnabled(id: $id, enabled: true) {
        __typename } }""",
        {"id": token_id},
        token=admin,
    )
    shown = await api.data(
        "query($n: String!) { worker(name: $n) { isTokenEnabled } }", {"n": name}, token=admin
    )
    assert shown["worker"] == {"isTokenEnabled": True}
    metadata = {**(variables.get("m") or {}), "load": 1}  # heartbeats carry it all
    beat = await api.data(
        """mutation($m: JSON) { workerHeartbeat(metadata: $m) { __typename
        ... on WorkerUpdated { worker { isConnected metadata } } } }""",
        {"m": metadata},
        token=token,
    )
    assert beat["workerHeartbeat"]["worker"] == {"isConnected": True, "metadata": metadata}
    return name, token


@pytest.fixture
async def admin(db: Database) -> str:
    await make_task_type(
        db, "scan", result_schema={"type": "object", "required": ["ok"]}, max_attempts=2
    )
    await make_task_type(db, "other")
    return (await make_token(db, role=TokenRole.ADMIN))[1]


def one_node(task_type: str, n: int) -> dict[str, Any]:
    return {
        "recipe": {"nodes": [{"name": "n", "taskType": task_type}]},
        "inputs": [{"i": i} for i in range(n)],
    }


async def test_the_whole_protocol(api: Api, db: Database, admin: str) -> None:
    name, token = await enabled_worker(api, admin, "scanner1.lab.example")
    assert name == "scanner1-lab-example"
    await make_batch(db, one_node("scan", 2))
    claimed = (await api.data(CLAIM, {"types": ["scan"]}, token=token))["claimJob"]["job"]
    assert (claimed["status"], claimed["worker"], claimed["attempt"]) == ("RUNNING", name, 1)
    # Concurrency 1: nothing more until this one is done.
    more = await api.data(CLAIM, {"types": ["scan"], "running": [claimed["id"]]}, token=token)
    assert more["claimJob"]["job"] is None

    before = await row_counts(db)
    bad = (await api.data(COMPLETE, {"job": claimed["id"], "result": {"nope": 1}}, token=token))[
        "completeJob"
    ]
    assert bad["__typename"] == "SchemaMismatch"
    assert bad["code"] == "SCHEMA_MISMATCH"
    assert await row_counts(db) == before  # an invalid result changes nothing
    async with db.read_session() as s:
        job = await s.scalar(select(Job).where(Job.worker == name))
    assert job is not None
    assert (job.status, job.result) == (JobStatus.RUNNING, None)

    done = (await api.data(COMPLETE, {"job": claimed["id"], "result": {"ok": True}}, token=token))[
        "completeJob"
    ]
    assert done == {
        "__typename": "JobFinished",
        "job": {"status": "COMPLETED", "result": {"ok": True}},
    }
    twice = (await api.data(COMPLETE, {"job": claimed["id"], "result": {"ok": True}}, token=token))[
        "completeJob"
    ]
    assert twice["__typename"] == "InvalidTransition"

    second = (await api.data(CLAIM, {"types": ["scan"]}, token=token))["claimJob"]["job"]
    failed = (await api.data(FAIL, {"job": second["id"], "cat": "INFRASTRUCTURE"}, token=token))[
        "failJob"
    ]
    assert failed["job"]["status"] == "QUEUED"  # retryable, an attempt left
    again = (await api.data(CLAIM, {"types": ["scan"]}, token=token))["claimJob"]["job"]
    assert (again["id"], again["attempt"]) == (second["id"], 2)
    final = (await api.data(FAIL, {"job": again["id"], "cat": "DOMAIN"}, token=token))["failJob"]
    assert final["job"] == {
        "status": "FAILED",
        "attempt": 2,
        "error": {"code": "NO_DISK", "category": "DOMAIN"},
    }


async def test_only_the_assigned_worker_may_finish_a_job(
    api: Api, db: Database, admin: str
) -> None:
    _, mine = await enabled_worker(api, admin, "a.example")
    _, theirs = await enabled_worker(api, admin, "b.example")
    await make_batch(db, one_node("scan", 1))
    claimed = (await api.data(CLAIM, {}, token=mine))["claimJob"]["job"]
    status, errors = await api.errors(
        COMPLETE, {"job": claimed["id"], "result": {"ok": 1}}, token=theirs
    )
    assert (status, errors[0]["extensions"]["code"]) == (403, "FORBIDDEN")
    _, reader = await make_token(db, role=TokenRole.READER)
    status, errors = await api.errors(CLAIM, {}, token=reader)
    assert (status, errors[0]["extensions"]["code"]) == (403, "FORBIDDEN")
    missing = await api.data(COMPLETE, {"job": gid("Job", 999999), "result": {}}, token=mine)
    assert missing["completeJob"]["__typename"] == "NotFound"


async def test_a_restarted_worker_gets_its_lost_jobs_requeued(
    api: Api, db: Database, admin: str
) -> None:
    _, token = await enabled_worker(api, admin, "flaky.example")
    await make_batch(db, one_node("scan", 1))
    first = (await api.data(CLAIM, {}, token=token))["claimJob"]["job"]
    # It restarted: it runs nothing, asks for work again, and gets its job back as a
    # new attempt.
    again = (await api.data(CLAIM, {"running": []}, token=token))["claimJob"]["job"]
    assert (again["id"], again["attempt"]) == (first["id"], 2)


async def test_allow_list_wins_over_deny_list(api: Api, db: Database, admin: str) -> None:
    _, picky = await enabled_worker(
        api,
        admin,
        "picky.example",
        c=10,
        m={"tasks_allowlist": ["other"], "tasks_denylist": ["other"]},
    )
    await make_batch(db, one_node("scan", 2))
    await make_batch(db, one_node("other", 1))
    got = (await api.data(CLAIM, {}, token=picky))["claimJob"]["job"]
    assert got is not None
    nothing = (await api.data(CLAIM, {"running": [got["id"]]}, token=picky))["claimJob"]["job"]
    assert nothing is None  # the scan jobs are not on its allow-list
    _, denier = await enabled_worker(
        api, admin, "denier.example", c=10, m={"tasks_denylist": ["scan"]}
    )
    assert (await api.data(CLAIM, {}, token=denier))["claimJob"]["job"] is None


@pytest.mark.parametrize(
    ("variables", "path"),
    [
        ({"host": ""}, "$.host"),
        ({"host": "h", "c": 0}, "$.concurrency"),
        ({"host": "h", "m": [1]}, "$.metadata"),
    ],
)
async def test_bad_registrations_write_nothing(
    api: Api, db: Database, variables: dict[str, Any], path: str
) -> None:
    before = await row_counts(db)
    found = (await api.data(REGISTER, variables))["registerWorker"]
    assert found["__typename"] == "ValidationFailed"
    assert found["violations"][0]["path"] == path
    assert await row_counts(db) == before


async def test_200_jobs_claimed_concurrently_by_4_workers_never_twice(
    api: Api, db: Database, admin: str
) -> None:
    tokens = [(await enabled_worker(api, admin, f"w{i}.example", c=1000))[1] for i in range(4)]
    await make_batch(db, one_node("other", 200))

    async def drain(token: str) -> list[str]:
        got: list[str] = []
        while True:
            job = (await api.data(CLAIM, {"running": got}, token=token))["claimJob"]["job"]
            if job is None:
                return got
            got.append(job["id"])

    claims = await asyncio.gather(*(drain(t) for t in tokens))
    every = [j for c in claims for j in c]
    assert len(every) == 200
    assert len(set(every)) == 200  # no job claimed twice
    assert sum(1 for c in claims if c) >= 2  # the work was shared


@pytest.mark.parametrize("category", ["infrastructure", "CATASTROPHE", ""])
async def test_fail_job_refuses_a_category_outside_the_enum(
    api: Api, db: Database, admin: str, category: str
) -> None:
    """A lower-case "infrastructure" used to be stored as is and never retried."""
    _, token = await enabled_worker(api, admin, "strict.example")
    await make_batch(db, one_node("scan", 1))
    claimed = (await api.data(CLAIM, {}, token=token))["claimJob"]["job"]
    before = await row_counts(db)
    status, errors = await api.errors(FAIL, {"job": claimed["id"], "cat": category}, token=token)
    assert (status, errors[0]["extensions"]["code"]) == (400, "BAD_REQUEST")
    assert "FailureCategory" in errors[0]["message"]
    literal = f"""mutation {{ failJob(job: "{claimed["id"]}", code: "X", message: "x",
        category: {category or '""'}) {{ __typename }} }}"""
    status, errors = await api.errors(literal, token=token)
    assert (status, errors[0]["extensions"]["code"]) == (400, "BAD_REQUEST")
    assert await row_counts(db) == before
    async with db.read_session() as s:
        job = await s.get(Job, int(base64.b64decode(claimed["id"]).decode().split(":")[1]))
    assert job is not None
    assert (job.status, job.error_category) == (JobStatus.RUNNING, None)


async def test_every_documented_category_is_accepted(api: Api, db: Database, admin: str) -> None:
    found = await api.data('{ __type(name: "FailureCategory") { enumValues { name } } }')
    names = {v["name"] for v in found["__type"]["enumValues"]}
    assert names == {"DOMAIN", "INFRASTRUCTURE", "TIMEOUT", "WORKER_LOST", "CONFIGURATION"}
    _, token = await enabled_worker(api, admin, "lenient.example", c=10)
    await make_batch(db, one_node("other", len(names)))
    for name in sorted(names):
        claimed = (await api.data(CLAIM, {"types": ["other"]}, token=token))["claimJob"]["job"]
        done = (await api.data(FAIL, {"job": claimed["id"], "cat": name}, token=token))["failJob"]
        assert done["__typename"] == "JobFinished"
        retried = name in {"INFRASTRUCTURE", "TIMEOUT", "WORKER_LOST"}
        assert done["job"]["status"] == ("QUEUED" if retried else "FAILED"), name
        assert done["job"]["error"] == (None if retried else {"code": "NO_DISK", "category": name})


async def test_a_malformed_job_id_is_a_job_that_does_not_exist(
    api: Api, db: Database, admin: str
) -> None:
    _, token = await enabled_worker(api, admin, "typo.example")
    for bad in ("not-an-id", "", "Sm9iOng=", gid("Batch", 1)):
        done = await api.data(COMPLETE, {"job": bad, "result": {"ok": 1}}, token=token)
        assert done["completeJob"]["__typename"] == "NotFound", bad


WAITING = """query($b: ID!) { batch(id: $b) { jobs { edges { node { node status
  waitingReason } } } } }"""


async def _reasons(api: Api, batch_id: int, token: str) -> list[tuple[str, str, str | None]]:
    found = await api.data(WAITING, {"b": gid("Batch", batch_id)}, token=token)
    return [
        (e["node"]["node"], e["node"]["status"], e["node"]["waitingReason"])
        for e in found["batch"]["jobs"]["edges"]
    ]


async def test_a_queued_job_says_when_no_connected_worker_can_take_it(
    api: Api, db: Database, admin: str
) -> None:
    definition = {
        "recipe": {
            "nodes": [
                {"name": "a", "taskType": "scan"},
                {"name": "b", "taskType": "scan", "dependsOn": ["a"]},
            ]
        },
        "inputs": [{}],
    }
    batch = await make_batch(db, definition)
    assert await _reasons(api, batch.id, admin) == [
        ("a", "QUEUED", "no connected worker offers this task type"),
        ("b", "BLOCKED", "waiting for the jobs it depends on to complete"),
    ]
    # A worker that refuses this task type changes nothing...
    await enabled_worker(api, admin, "denier.example", m={"tasks_denylist": ["scan"]})
    assert (await _reasons(api, batch.id, admin))[0][2] == (
        "no connected worker offers this task type"
    )
    # ...one that takes it (connected, token enabled) clears the reason.
    await enabled_worker(api, admin, "taker.example")
    assert (await _reasons(api, batch.id, admin))[0] == ("a", "QUEUED", None)


async def test_a_fleet_job_says_when_no_fleet_worker_has_its_implementation(
    api: Api, db: Database, admin: str
) -> None:
    from db.uow import UnitOfWork
    from domain.workers import service as workers

    await make_task_type(db, "echo", implementation="builtin.echo")
    batch = await make_batch(db, one_node("echo", 1))
    assert await _reasons(api, batch.id, admin) == [
        ("n", "QUEUED", "no connected fleet worker has the implementation 'builtin.echo'")
    ]
    async with UnitOfWork(db.write_session) as uow:
        await workers.register_fleet(
            uow, host="fleet.example", concurrency=4, dynamic_metadata={"implementations": []}
        )
        await workers.register_fleet(
            uow,
            host="fleet.example",
            concurrency=4,
            dynamic_metadata={"implementations": ["builtin.echo"]},
        )
        await uow.commit()
    assert await _reasons(api, batch.id, admin) == [("n", "QUEUED", None)]
