"""Jobs and artifacts: batches name input artifacts, fleet implementations read their
files and make outputs (recorded when the job completes), pull workers do the same
over the API and the upload endpoint."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select, text

from db.enums import JobStatus, TokenRole
from db.models import Job
from db.session import Database
from jobs import runtime
from tests.factories import RecordingDispatcher, make_task_type, make_token, run_creation
from tests.graphql.artifact_helpers import create, sha, upload, upload_all, urls
from tests.graphql.conftest import Api
from tests.graphql.test_pull_workers import CLAIM, COMPLETE, enabled_worker
from tests.graphql.test_readme import db_id, run_fleet


@pytest.fixture
async def fleet(database_url: str) -> AsyncIterator[None]:
    runtime.configure(database_url)
    runtime.use_dispatcher(RecordingDispatcher())
    yield
    runtime.use_dispatcher(None)
    await runtime.dispose()


BATCH = """mutation($input: BatchInput!) { createBatch(input: $input) { __typename
  ... on BatchCreated { batch { id } }
  ... on InvalidBatch { validation { errors { name description node inputIndex } } } } }"""


def batch_input(task_type: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "workspace": "default",
        "title": "sums",
        "definition": {
            "recipe": {
                "nodes": [{"name": "sum", "taskType": task_type, "inputs": "{{item.documents}}"}]
            },
            "inputs": items,
        },
    }


async def test_a_batch_over_artifacts_runs_checksums_on_the_fleet(
    api: Api, db: Database, fleet: None
) -> None:
    _, token = await make_token(db, role=TokenRole.WRITER)
    await make_task_type(db, "checksum", implementation="builtin.checksum")
    docs = {"a.txt": b"one two three\nfour\n", "b.txt": b"five six\n"}
    first = await create(api, token, {"a.txt": docs["a.txt"]})
    second = await create(api, token, {"b.txt": docs["b.txt"], "empty": b""})
    pending = await create(api, token, {"never.txt": b"never uploaded"})
    await upload_all(api, token, first, docs)
    await upload_all(api, token, second, docs)
    ids = [first["artifact"]["id"], second["artifact"]["id"]]

    refused = (
        await api.data(
            BATCH,
            {
                "input": batch_input(
                    "checksum",
                    [
                        {"documents": ids},
                        {"documents": "bm90IGFuIGlk"},
                        {"documents": pending["artifact"]["id"]},
                    ],
                )
            },
            token=token,
        )
    )["createBatch"]
    assert refused["__typename"] == "InvalidBatch"
    errors = refused["validation"]["errors"]
    assert [(e["name"], e["inputIndex"]) for e in errors] == [
        ("INPUTS_INVALID", 1),
        ("INPUTS_INVALID", 2),
    ]
    assert "still has files to upload" in errors[1]["description"]

    created = (
        await api.data(
            BATCH,
            {"input": batch_input("checksum", [{"documents": ids}, {"documents": ids[1]}])},
            token=token,
        )
    )["createBatch"]
    assert created["__typename"] == "BatchCreated"
    batch_id = db_id(created["batch"]["id"])
    await run_creation(db, batch_id)
    async with db.read_session() as s:
        assert await s.scalar(text("SELECT count(*) FROM job_input")) == 3
    await run_fleet(db, batch_id)

    found = await api.data(
        """query($b: ID!) { batch(id: $b) { jobs(first: 2) { edges { node { status result
          inputs(first: 5) { id } outputs(first: 5) { id category data createdBy { id }
            relations(first: 5) { type target { id } }
            isComplete files(first: 5) { edges { node { path size downloadUrl } } } } } } } } }""",
        {"b": created["batch"]["id"]},
        token=token,
    )
    jobs = [e["node"] for e in found["batch"]["jobs"]["edges"]]
    assert [j["status"] for j in jobs] == ["COMPLETED", "COMPLETED"]
    assert jobs[0]["result"] == {"files": 3, "bytes": 28, "words": 6}
    assert [i["id"] for i in jobs[0]["inputs"]] == ids
    [output] = jobs[0]["outputs"]
    assert output["category"] == "checksums"
    assert output["isComplete"] is True
    assert sorted((r["type"], r["target"]["id"]) for r in output["relations"]) == sorted(
        ("BUILT_USING", i) for i in ids
    )
    [sums] = [e["node"] for e in output["files"]["edges"]]
    body = await api.client.get(sums["downloadUrl"], headers={"authorization": f"Bearer {token}"})
    assert body.text.splitlines()[0] == f"{sha(docs['a.txt'])}  {db_id(ids[0])}/a.txt"
    assert len(body.text.splitlines()) == 3


async def test_a_pull_worker_makes_outputs_over_the_api(api: Api, db: Database) -> None:
    _, admin = await make_token(db, role=TokenRole.ADMIN)
    await make_task_type(db, "convert")
    _, worker = await enabled_worker(api, admin, "w1.example.org")
    created = (
        await api.data(
            BATCH.replace("$input: BatchInput!", "$input: BatchInput!"),
            {
                "input": {
                    "workspace": "default",
                    "title": "t",
                    "definition": {
                        "recipe": {"nodes": [{"name": "c", "taskType": "convert"}]},
                        "inputs": [{}],
                    },
                }
            },
            token=admin,
        )
    )["createBatch"]
    await run_creation(db, db_id(created["batch"]["id"]))
    job = (await api.data(CLAIM, {"types": ["convert"], "running": []}, token=worker))["claimJob"][
        "job"
    ]
    out = {"result.txt": b"converted"}
    made = await create(api, worker, out, workspace=None, job=job["id"], category="result")
    assert made["__typename"] == "ArtifactCreated"
    await upload_all(api, worker, made, out)
    done = await api.data(COMPLETE, {"job": job["id"], "result": {}}, token=worker)
    assert done["completeJob"]["__typename"] == "JobFinished"
    found = await api.data(
        "query($j: ID!) { job(id: $j) { outputs { id isComplete createdBy { id } } } }",
        {"j": job["id"]},
        token=admin,
    )
    assert found["job"]["outputs"] == [
        {"id": made["artifact"]["id"], "isComplete": True, "createdBy": {"id": job["id"]}}
    ]
    # Once the job is over, the worker may not make more outputs for it, nor write others.
    status, errors = await api.errors(
        """mutation($j: ID!) { createArtifact(input: {category: "x", job: $j}) { __typename } }""",
        {"j": job["id"]},
        token=worker,
    )
    assert (status, errors[0]["extensions"]["code"]) == (403, "FORBIDDEN")
    other = await create(api, admin, {"z": b"z"})
    refused = await upload(api, worker, urls(other)["z"], b"z")
    assert refused.status_code == 403
    async with db.read_session() as s:
        status_now = await s.scalar(select(Job.status))
    assert status_now is JobStatus.COMPLETED
    await asyncio.sleep(0)
