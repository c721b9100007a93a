"""`batchgraph submit batch.json --watch`: a live progress bar, and the exit code says
whether every job completed."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from db.enums import JobStatus, TokenRole
from db.models import Batch, Job
from db.session import Database
from db.uow import UnitOfWork
from domain.jobs import service as jobs
from domain.jobs.rules import Initiator
from tests.factories import make_task_type, make_token, run_creation


async def _finish_all(db: Database, *, fail_one: bool) -> None:
    """Play the worker: create the batch's jobs, then run them to an end."""
    for _ in range(100):
        async with db.read_session() as s:
            batch_id = await s.scalar(select(Batch.id).where(Batch.title == "from a file"))
        if batch_id is not None:
            break
        await asyncio.sleep(0.1)
    assert batch_id is not None
    await run_creation(db, batch_id)
    for _ in range(100):
        async with db.read_session() as s:
            ids = list(
                await s.scalars(
                    select(Job.id).where(Job.status == JobStatus.QUEUED).order_by(Job.id)
                )
            )
        if len(ids) == 3:
            break
        await asyncio.sleep(0.1)
    assert len(ids) == 3
    for n, job_id in enumerate(ids):
        async with UnitOfWork(db.write_session) as uow:
            [job] = await uow.jobs.lock([job_id])
            await jobs.transition(uow, job, JobStatus.RUNNING, initiator=Initiator.WORKER)
            if fail_one and n == 0:
                await jobs.fail(uow, job, code="X", message="x", category="DOMAIN", worker="w")
            else:
                await jobs.complete(uow, job, result={}, worker="w")
            await uow.commit()
        await asyncio.sleep(0.05)


@pytest.mark.parametrize(("fail_one", "code"), [(False, 0), (True, 1)])
async def test_submit_and_watch(
    live_server: str, db: Database, tmp_path: Path, fail_one: bool, code: int
) -> None:
    await make_task_type(db, "t")
    _, token = await make_token(db, role=TokenRole.WRITER)
    spec = tmp_path / "batch.json"
    spec.write_text(
        json.dumps(
            {
                "title": "from a file",
                "definition": {
                    "recipe": {"nodes": [{"name": "n", "taskType": "t"}]},
                    "inputs": [{}, {}, {}],
                },
            }
        )
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "launcher",
        "submit",
        str(spec),
        "--watch",
        "--url",
        f"{live_server}/graphql",
        env={**os.environ, "BATCHGRAPH_TOKEN": token},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    await _finish_all(db, fail_one=fail_one)
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == code, err.decode()
    text = out.decode()
    assert "3 jobs" in text
    assert "3/3" in text
    assert ("failed 1" in text) is fail_one


def test_submit_reports_an_invalid_batch(tmp_path: Path) -> None:
    spec = tmp_path / "bad.json"
    spec.write_text("{not json")
    found = subprocess.run(
        [sys.executable, "-m", "launcher", "submit", str(spec)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert found.returncode == 2
    assert "cannot read" in found.stderr
