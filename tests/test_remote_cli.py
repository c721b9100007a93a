"""The command line's thin GraphQL commands against a running server."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.cells import cell_len

from db.enums import JobStatus, TokenRole
from db.session import Database
from launcher.cli import main
from launcher.runtime import forget_server, record_server, running_server_url
from tests.factories import make_batch, make_task_type, make_token


def gid(kind: str, pk: int) -> str:
    return base64.b64encode(f"{kind}:{pk}".encode()).decode()


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
async def cli_env(live_server: str, db: Database, monkeypatch: pytest.MonkeyPatch) -> str:
    _, token = await make_token(db, role=TokenRole.ADMIN, owner="cli")
    monkeypatch.setenv("BATCHGRAPH_URL", f"{live_server}/graphql")
    monkeypatch.setenv("BATCHGRAPH_TOKEN", token)
    monkeypatch.setenv("COLUMNS", "80")
    return token


async def run(*args: str) -> int:
    return await asyncio.to_thread(main, list(args))


async def test_batches_cancel_and_retry(
    cli_env: str, db: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    await make_task_type(db, "scan")
    batch = await make_batch(
        db,
        {"recipe": {"nodes": [{"name": "n", "taskType": "scan"}]}, "inputs": [{}, {}]},
        title="nightly scan",
    )
    assert await run("batches") == 0
    out = capsys.readouterr().out
    assert max(cell_len(line) for line in out.splitlines()) <= 80
    assert gid("Batch", batch.id) in out  # ids are never cut: the other commands take them
    assert "nightly scan" in out
    assert "running" in out
    assert "0/2" in out
    assert "superseded" not in out  # the footnote only when a row carries its mark
    from domain.batches import service as batch_service

    again = await make_batch(
        db, None, title="scan again", previous=batch_service.PreviousBatch(root_batch_id=batch.id)
    )
    assert await run("batches") == 0
    out = capsys.readouterr().out
    assert "* superseded by a re-processing" in out
    assert gid("Batch", again.id) in out

    from sqlalchemy import select

    from db.models import Job

    async with db.read_session() as s:
        first, second = list(
            await s.scalars(select(Job.id).where(Job.batch_id == batch.id).order_by(Job.id))
        )
    assert await run("cancel", gid("Job", first), "--reason", "not needed") == 0
    assert "is CANCELED" in capsys.readouterr().out
    assert await run("retry", gid("Job", first)) == 0
    assert "is QUEUED, attempt 2" in capsys.readouterr().out
    assert await run("cancel", gid("Batch", batch.id)) == 0
    assert "2 jobs canceled" in capsys.readouterr().out
    assert await run("batches", "--workspace", "default") == 0
    assert "canceled" in capsys.readouterr().out
    # A batch's retry re-opens its canceled jobs when asked.
    assert await run("retry", gid("Batch", batch.id)) == 0
    assert "0 jobs retried" in capsys.readouterr().out  # none failed
    assert await run("retry", gid("Batch", batch.id), "--include-canceled") == 0
    assert "2 jobs retried" in capsys.readouterr().out
    assert await run("cancel", gid("Batch", batch.id)) == 0
    capsys.readouterr()

    # Refusals are one line with their code, exit code 2, no traceback.
    assert await run("cancel", gid("Job", second)) == 2
    err = capsys.readouterr().err
    assert "INVALID_TRANSITION" in err
    assert "Traceback" not in err
    assert await run("cancel", "not-an-id") == 2
    assert "NOT_FOUND" in capsys.readouterr().err
    assert await run("retry", gid("Job", 999999)) == 2
    assert "NOT_FOUND" in capsys.readouterr().err
    assert await run("retry", "nonsense") == 2
    assert "no batch or job 'nonsense'" in capsys.readouterr().err
    # A refused field is named with what is wrong with it.
    assert await run("cancel", gid("Job", second), "--reason", "x" * 1001) == 2
    err = capsys.readouterr().err
    assert "VALIDATION_FAILED" in err
    assert "$.reason" in err


async def test_submit_to_a_workspace_that_does_not_exist_is_one_line(
    cli_env: str, db: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "b.json"
    spec.write_text(
        json.dumps(
            {
                "title": "t",
                "workspace": "nowhere",
                "definition": {
                    "recipe": {"nodes": [{"name": "n", "taskType": "t"}]},
                    "inputs": [{}],
                },
            }
        )
    )
    assert await run("submit", str(spec)) == 2
    err = capsys.readouterr().err
    assert "NOT_FOUND" in err
    assert "{" not in err  # not the raw payload


async def test_a_url_that_is_not_one_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BATCHGRAPH_URL", "notaurl")
    assert await run("batches") == 2
    err = capsys.readouterr().err
    assert "'notaurl' is not a server URL" in err
    assert "Traceback" not in err


async def test_workers_lists_registered_workers(
    cli_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from launcher.client import Client

    url = os.environ["BATCHGRAPH_URL"]
    registered = await asyncio.to_thread(
        Client(url, None).call,
        'mutation { registerWorker(input: {host: "cli.example"}) { __typename } }',
    )
    assert registered["registerWorker"]["__typename"] == "WorkerRegistered"
    assert await run("workers", "--all") == 0
    out = capsys.readouterr().out
    assert max(cell_len(line) for line in out.splitlines()) <= 80
    assert "cli-example" in out
    assert "disabled" in out  # its token, until an admin enables it


async def test_a_refused_token_is_one_line(
    live_server: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BATCHGRAPH_URL", f"{live_server}/graphql")
    monkeypatch.setenv("BATCHGRAPH_TOKEN", "bg_not-a-token")
    assert await run("workers") == 2
    err = capsys.readouterr().err
    assert "UNAUTHENTICATED" in err
    assert "bg_not-a-token" not in err


def test_a_second_server_on_the_same_folder_keeps_the_first_ones_record(tmp_path: Path) -> None:
    """The command line keeps talking to the server that is still running: a second one
    (another port) neither replaces its record nor, when it stops, removes it."""
    first = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (tmp_path / "server.json").write_text(
            json.dumps({"url": "http://127.0.0.1:8000/graphql", "pid": first.pid})
        )
        assert record_server(tmp_path, "http://127.0.0.1:18442/graphql") is False
        forget_server(tmp_path)  # the second server stops
        assert running_server_url(tmp_path) == "http://127.0.0.1:8000/graphql"
    finally:
        first.kill()
        first.wait()
    # Once the first is gone, the next server records itself.
    assert record_server(tmp_path, "http://127.0.0.1:18442/graphql") is True
    assert running_server_url(tmp_path) == "http://127.0.0.1:18442/graphql"


# --- server text never reaches the terminal raw (attacker review) -----------------

HOSTILE = "evil\u001b]0;PWNED\u0007\u001b[2J\u202egnp.exe"
RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


async def test_control_characters_from_the_server_are_shown_escaped(
    cli_env: str, db: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    """Stored before the server refused them (or sent by a server that does not):
    the worker's host, a batch's title, a failed job's code and message."""
    from sqlalchemy import select, text

    from db.models import Job
    from db.uow import UnitOfWork
    from domain.jobs.rules import Initiator
    from launcher.client import Client
    from launcher.console import out
    from launcher.watch import failed_jobs_table
    from tests.factories import move_job

    url = os.environ["BATCHGRAPH_URL"]
    await asyncio.to_thread(
        Client(url, None).call,
        'mutation { registerWorker(input: {host: "cli.example"}) { __typename } }',
    )
    await make_task_type(db, "scan")
    batch = await make_batch(
        # Two jobs: one fails, one is left to cancel.
        db,
        {"recipe": {"nodes": [{"name": "n", "taskType": "scan"}]}, "inputs": [{}, {}]},
    )
    async with db.read_session() as s:
        job_id, _ = (
            await s.scalars(select(Job.id).where(Job.batch_id == batch.id).order_by(Job.id))
        ).all()
    async with UnitOfWork(db.write_session) as uow:
        await move_job(uow, job_id, JobStatus.RUNNING, Initiator.WORKER)
        await move_job(
            uow,
            job_id,
            JobStatus.FAILED,
            Initiator.WORKER,
            error=(HOSTILE[:60], f"first line\n{HOSTILE}", "DOMAIN"),
        )
        await uow.commit()
    async with db.engine.begin() as conn:
        await conn.execute(text("UPDATE worker SET host = :h"), {"h": HOSTILE})
        await conn.execute(text("UPDATE batch SET title = :t"), {"t": HOSTILE})
    capsys.readouterr()

    assert await run("workers", "--all") == 0
    assert await run("batches") == 0
    table = await asyncio.to_thread(failed_jobs_table, Client(url, cli_env), gid("Batch", batch.id))
    assert table is not None
    out.print(table)
    assert await run("cancel", gid("Batch", batch.id)) == 0
    shown = capsys.readouterr().out
    assert RAW.search(shown) is None, repr(RAW.search(shown))
    assert "evil\\x1b]0;PWNED\\x07" in shown  # visible, so the admin sees what was sent
    assert "\\u202e" in shown
    assert "first" in shown  # the message keeps its line feed (folded in a narrow table)
    assert "cli-example        external   evil\\x1b]" in shown  # the host, cut, not raw


def test_shown_escapes_controls_bidi_and_markup() -> None:
    from launcher.console import shown

    assert shown("a\x1b[2Jb\x07\u202e[bold]x[/]") == "a\\x1b[2Jb\\x07\\u202e\\[bold]x\\[/]"
    assert shown("a\x1b[2J", markup=False) == "a\\x1b[2J"
    assert shown("one\ntwo\tthree") == "one\\x0atwo\\x09three"
    assert shown("one\ntwo\tthree\r", multiline=True) == "one\ntwo\tthree\\x0d"
    assert shown("c1 \x9b and del \x7f, é 日本 🚀") == "c1 \\x9b and del \\x7f, é 日本 🚀"
    assert shown(42) == "42"
