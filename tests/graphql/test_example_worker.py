"""examples/pull_worker.py works against a real server, as the README says."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select

from db.enums import JobStatus
from db.models import Job, Token
from db.session import Database
from tests.factories import make_batch, make_task_type

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "pull_worker.py"


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


async def test_register_enable_and_work_until_idle(live_server: str, db: Database) -> None:
    url = f"{live_server}/graphql"
    await make_task_type(db, "word-count")
    batch = await make_batch(
        db,
        {
            "recipe": {"nodes": [{"name": "n", "taskType": "word-count"}]},
            "inputs": [{"text": "a b c"}, {"text": "hello world"}],
        },
    )
    registered = await asyncio.to_thread(_run, "--url", url, "register", "--host", "ex.lab")
    assert registered.returncode == 0, registered.stderr
    token = registered.stdout.strip().splitlines()[-1]
    refused = await asyncio.to_thread(
        _run, "--url", url, "work", "--until-idle", env={"BATCHGRAPH_TOKEN": token}
    )
    assert refused.returncode != 0  # disabled until an admin enables it
    async with db.engine.begin() as conn:
        from sqlalchemy import update

        await conn.execute(update(Token).where(Token.owner == "worker ex-lab").values(enabled=True))
    worked = await asyncio.to_thread(
        _run,
        "--url",
        url,
        "work",
        "--task-type",
        "word-count",
        "--until-idle",
        env={"BATCHGRAPH_TOKEN": token},
    )
    assert worked.returncode == 0, worked.stderr
    async with db.read_session() as s:
        jobs = list(await s.scalars(select(Job).where(Job.batch_id == batch.id).order_by(Job.id)))
    assert [(j.status, j.result, j.worker) for j in jobs] == [
        (JobStatus.COMPLETED, {"words": 3}, "ex-lab"),
        (JobStatus.COMPLETED, {"words": 2}, "ex-lab"),
    ]
