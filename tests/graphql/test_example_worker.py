"""examples/pull_worker.py against a real server, following the README's step 14."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

from sqlalchemy import select

from db.enums import JobStatus, TokenRole
from db.models import Job
from db.session import Database
from tests.factories import make_batch, make_task_type, make_token, run_creation
from tests.graphql.test_readme import README, walkthrough

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "pull_worker.py"


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("BATCHGRAPH_TOKEN", "BATCHGRAPH_URL")}
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**base, **(env or {})},
    )


def _post(url: str, token: str, query: str, variables: dict[str, Any] | None = None) -> Any:
    request = urllib.request.Request(
        url,
        data=json.dumps({"query": query, "variables": variables or {}}).encode(),
        headers={"content-type": "application/json", "authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        body = json.loads(response.read())
    assert "errors" not in body, body
    return body["data"]


def _readme_output(after: str) -> list[str]:
    """The sample output block that follows the line containing ``after``."""
    text = README.read_text()
    start = text.index(after)
    start = text.index("```\n", start) + 4  # past the end of the command's own block
    block = re.search(r"```\n(.*?)```", text[start:], flags=re.S)
    assert block is not None
    return block.group(1).strip().splitlines()


def _shape(line: str) -> str:
    """A line with its ids, tokens and host names blanked, to compare with the README."""
    line = re.sub(r"Sm9i[A-Za-z0-9=]+", "<job>", line)
    line = re.sub(r"VG9r[A-Za-z0-9=]+", "<token-id>", line)
    line = re.sub(r"bg_[A-Za-z0-9_…-]+", "<secret>", line)
    return re.sub(r"worker [a-z0-9-]+$", "worker <name>", line)


async def test_the_readme_pull_worker_run(live_server: str, db: Database) -> None:
    url = f"{live_server}/graphql"
    _, admin = await make_token(db, role=TokenRole.ADMIN)
    steps = dict(walkthrough())
    for name in ("CreateWorkspace", "CreateWordCount", "CreateCaptionBatch"):
        done = await asyncio.to_thread(_post, url, admin, steps[name])
    batch = done["createBatch"]["batch"]["id"]
    async with asyncio.timeout(30):
        while True:  # no fleet here: create the recipes and jobs as it would
            await run_creation(db, int(base64.b64decode(batch).decode().split(":")[1]))
            waiting = await asyncio.to_thread(
                _post, url, admin, steps["WhyWaiting"], {"batch": batch}
            )
            if len(waiting["batch"]["jobs"]["edges"]) == 3:
                break
    assert {e["node"]["waitingReason"] for e in waiting["batch"]["jobs"]["edges"]} == {
        "no connected worker offers this task type"
    }

    registered = await asyncio.to_thread(_run, "--url", url, "register", "--host", "ex.lab")
    assert registered.returncode == 0, registered.stderr
    lines = registered.stdout.strip().splitlines()
    assert [_shape(line) for line in lines] == [
        _shape(line) for line in _readme_output("examples/pull_worker.py register")
    ]
    token = re.search(r"(bg_\S+)", lines[1]).group(1)  # type: ignore[union-attr]
    token_id = re.search(r'id: "([^"]+)"', lines[2]).group(1)  # type: ignore[union-attr]

    refused = await asyncio.to_thread(
        _run, "--url", url, "work", "--until-idle", env={"BATCHGRAPH_TOKEN": token}
    )
    assert refused.returncode == 1  # disabled until an admin enables it
    assert refused.stderr.startswith("refused: UNAUTHENTICATED")
    assert "Traceback" not in refused.stderr

    enabled = await asyncio.to_thread(
        _post, url, admin, steps["EnableWorker"], {"tokenId": token_id}
    )
    assert enabled["setTokenEnabled"]["token"]["enabled"] is True
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
    assert [_shape(line) for line in worked.stdout.strip().splitlines()] == [
        _shape(line) for line in _readme_output("examples/pull_worker.py work")
    ]
    after = await asyncio.to_thread(_post, url, admin, steps["WhyWaiting"], {"batch": batch})
    assert [e["node"]["status"] for e in after["batch"]["jobs"]["edges"]] == ["COMPLETED"] * 3


async def test_a_refused_result_is_reported_and_fails_the_job(
    live_server: str, db: Database
) -> None:
    """A SchemaMismatch used to be ignored: the job stayed RUNNING, the next claim made
    the server think the worker had restarted, and the script exited 0."""
    url = f"{live_server}/graphql"
    await make_task_type(db, "line-count", result_schema={"type": "object", "required": ["lines"]})
    batch = await make_batch(
        db,
        {
            "recipe": {"nodes": [{"name": "n", "taskType": "line-count"}]},
            "inputs": [{"text": "a b"}, {"text": "c"}],
        },
    )
    registered = await asyncio.to_thread(_run, "--url", url, "register", "--host", "strict.lab")
    token = re.search(r"(bg_\S+)", registered.stdout).group(1)  # type: ignore[union-attr]
    token_id = re.search(r'id: "([^"]+)"', registered.stdout).group(1)  # type: ignore[union-attr]
    _, admin = await make_token(db, role=TokenRole.ADMIN)
    await asyncio.to_thread(
        _post,
        url,
        admin,
        "mutation($id: ID!) { setTokenEnabled(id: $id, enabled: true) { __typename } }",
        {"id": token_id},
    )
    worked = await asyncio.to_thread(
        _run, "--url", url, "work", "--until-idle", env={"BATCHGRAPH_TOKEN": token}
    )
    assert worked.returncode == 1
    assert "claimed job" in worked.stdout
    assert "completed job" not in worked.stdout
    assert worked.stderr.startswith("refused: completeJob")
    assert "SCHEMA_MISMATCH" in worked.stderr
    async with db.read_session() as s:
        jobs = list(await s.scalars(select(Job).where(Job.batch_id == batch.id).order_by(Job.id)))
    # The refused job is failed (not left running); the other was never claimed.
    assert [(j.status, j.error_code) for j in jobs] == [
        (JobStatus.FAILED, "RESULT_INVALID"),
        (JobStatus.QUEUED, None),
    ]


async def test_without_a_url_it_finds_the_server_of_its_folder(
    live_server: str, tmp_path: Path
) -> None:
    """As the batchgraph command does: `serve` notes where it listens (any port) in
    BATCHGRAPH_HOME, and the example run with the project's Python reads it there."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "server.json").write_text(
        json.dumps({"url": f"{live_server}/graphql", "pid": os.getpid()})
    )
    found = await asyncio.to_thread(
        _run, "register", "--host", "found.lab", env={"BATCHGRAPH_HOME": str(home)}
    )
    assert found.returncode == 0, found.stderr
    assert found.stdout.startswith("registered as worker found-lab")
    nowhere = await asyncio.to_thread(
        _run,
        "register",
        "--host",
        "lost.lab",
        env={"BATCHGRAPH_HOME": str(tmp_path / "empty"), "BATCHGRAPH_PORT": "1"},
    )
    assert nowhere.returncode == 1
    assert "127.0.0.1:1/graphql" in nowhere.stderr
