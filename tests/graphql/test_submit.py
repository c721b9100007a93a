"""`batchgraph submit batch.json --watch`: a live progress bar, and the exit code says
whether every job completed."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest
from sqlalchemy import select

from db.enums import JobStatus, TokenRole
from db.models import Batch, Job
from db.session import Database
from db.uow import UnitOfWork
from domain.jobs.rules import Initiator
from tests.factories import make_task_type, make_token, move_job, run_creation


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
            await move_job(uow, job_id, JobStatus.RUNNING, Initiator.WORKER)
            if fail_one and n == 0:
                await move_job(
                    uow, job_id, JobStatus.FAILED, Initiator.WORKER, error=("X", "x", "DOMAIN")
                )
            else:
                await move_job(uow, job_id, JobStatus.COMPLETED, Initiator.WORKER)
            await uow.commit()
        await asyncio.sleep(0.05)


def _spec(tmp_path: Path) -> Path:
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
    return spec


@pytest.mark.parametrize(("fail_one", "code"), [(False, 0), (True, 1)])
async def test_submit_and_watch(
    live_server: str, db: Database, tmp_path: Path, fail_one: bool, code: int
) -> None:
    await make_task_type(db, "t")
    _, token = await make_token(db, role=TokenRole.WRITER)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "launcher",
        "submit",
        str(_spec(tmp_path)),
        "--watch",
        env={**os.environ, "BATCHGRAPH_TOKEN": token, "BATCHGRAPH_URL": f"{live_server}/graphql"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    await _finish_all(db, fail_one=fail_one)
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == code, err.decode()
    text = out.decode()
    assert "3 jobs" in text
    assert "3/3" in text
    assert f"completed {2 if fail_one else 3}" in text
    assert ("failed 1" in text) is fail_one
    # Off a terminal too, the counters line and the summary are lines of their own.
    assert any(line.startswith("from a file: 3 jobs in ") for line in text.splitlines()), text
    # On failure, the failed jobs are listed with their error codes.
    assert ("failed jobs (1)" in text) is fail_one
    assert (" X " in text) is fail_one  # the code _finish_all fails the job with


ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|\x1b[=>]")


def _run_in_a_terminal(args: list[str], env: dict[str, str], columns: int) -> tuple[int, str]:
    """Run a command under a pseudo-terminal of ``columns``; its exit code and output."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, columns, 0, 0))
    process = subprocess.Popen(
        args, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True
    )
    os.close(slave)
    chunks: list[bytes] = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the other side closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    return process.wait(30), b"".join(chunks).decode(errors="replace")


@pytest.mark.parametrize("columns", [80, 100])
async def test_the_live_display_fits_the_terminal(
    live_server: str, db: Database, tmp_path: Path, columns: int
) -> None:
    """No line wraps at 80 or 100 columns: the bar, counts, rate and ETA stay on their
    lines while the display refreshes, and the failure table fits too."""
    from rich.cells import cell_len

    await make_task_type(db, "t")
    _, token = await make_token(db, role=TokenRole.WRITER)
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR")}
    env.update(
        TERM="xterm-256color",
        BATCHGRAPH_TOKEN=token,
        BATCHGRAPH_URL=f"{live_server}/graphql",
    )
    args = [sys.executable, "-m", "launcher", "submit", str(_spec(tmp_path)), "--watch"]
    running = asyncio.create_task(asyncio.to_thread(_run_in_a_terminal, args, env, columns))
    await _finish_all(db, fail_one=True)
    code, output = await asyncio.wait_for(running, 60)
    assert code == 1, output
    lines = [line for line in re.split(r"[\r\n]", ANSI.sub("", output)) if line.strip()]
    too_wide = [line for line in lines if cell_len(line) > columns]
    assert not too_wide, f"lines wider than {columns} columns: {too_wide}"
    # The bar's line holds done/total, the rate and the ETA together: nothing wrapped.
    bar = [line for line in lines if "3/3" in line]
    assert bar, lines
    assert all("jobs/s" in line and "ETA" in line for line in bar), bar
    assert any(
        "completed 2" in line and "failed 1" in line and "running 0" in line for line in lines
    ), lines
    assert any("failed jobs (1)" in line for line in lines), lines


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
