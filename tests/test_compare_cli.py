"""`batchgraph compare ROOT_ID`: the chain's comparison as a table that fits the terminal,
regressions highlighted (run under a pseudo-terminal, as a person would)."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import sys
from collections.abc import Iterator

import pytest
from rich.cells import cell_len

from db.enums import TokenRole
from db.session import Database
from launcher.cli import main
from tests.factories import fold_counters, make_token
from tests.graphql.test_comparison import chain, recipe, run_batch
from tests.graphql.test_submit import ANSI, _run_in_a_terminal
from tests.graphql.test_subscriptions import gid

RED = "\x1b[1;31m"


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


async def demo_like_chain(db: Database) -> int:
    """Three batches: the second makes thumbnails faster, the third resizes slower."""
    one, two, three = await chain(
        db,
        ("Catalog render", recipe("resize", "thumb")),
        ("Catalog render, faster thumbnails", None),
        ("Catalog render, a slower resize", None),
    )
    await run_batch(db, one.id, {"resize": 1.0, "thumb": 1.0})
    await run_batch(db, two.id, {"resize": 1.0, "thumb": 0.4})
    await run_batch(db, three.id, {"resize": 2.5, "thumb": 0.4})
    await fold_counters(db)
    return int(one.id)


@pytest.mark.parametrize("columns", [80, 120])
async def test_compare_fits_the_terminal_and_highlights_regressions(
    live_server: str, db: Database, columns: int
) -> None:
    root = await demo_like_chain(db)
    _, token = await make_token(db, role=TokenRole.READER)
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR")}
    env.update(
        TERM="xterm-256color", BATCHGRAPH_TOKEN=token, BATCHGRAPH_URL=f"{live_server}/graphql"
    )
    args = [sys.executable, "-m", "launcher", "compare", gid("Batch", root)]
    code, output = await asyncio.to_thread(_run_in_a_terminal, args, env, columns)
    assert code == 0, output
    plain = ANSI.sub("", output)
    lines = [line for line in re.split(r"[\r\n]", plain) if line.strip()]
    too_wide = [line for line in lines if cell_len(line) > columns]
    assert not too_wide, f"lines wider than {columns} columns: {too_wide}"
    # Every batch is a column at 80 columns already; the rows hold node and metric.
    header = next(line for line in lines if "#1" in line and "#3" in line)
    assert header.index("#1") < header.index("#2") < header.index("#3")
    p50 = next(line for line in lines if "run p50" in line and "▲" in line)
    assert p50.split()[2:] == ["1", "s", "1", "s", "2.5", "s", "+150%", "▲"]
    assert any("run p50" in line and "▼" in line and "-60%" in line for line in lines)
    assert any(line.startswith("regressions (6 metrics)") for line in lines)
    assert "  ▲ #3 resize: run avg 1 s → 2.5 s (+150%) and 5 more" in lines
    assert any(line.startswith("improvements (6 metrics)") for line in lines)
    assert "  ▼ #2 thumb: run avg 1 s → 0.4 s (-60%) and 5 more" in lines
    assert RED in output  # a regression is red on a terminal


@pytest.fixture
async def cli_env(live_server: str, db: Database, monkeypatch: pytest.MonkeyPatch) -> str:
    _, token = await make_token(db, role=TokenRole.READER, owner="cli")
    monkeypatch.setenv("BATCHGRAPH_URL", f"{live_server}/graphql")
    monkeypatch.setenv("BATCHGRAPH_TOKEN", token)
    monkeypatch.setenv("COLUMNS", "80")
    return token


async def test_compare_exit_codes(
    cli_env: str, db: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    root = await demo_like_chain(db)
    run = lambda *a: asyncio.to_thread(main, list(a))  # noqa: E731
    assert await run("compare", gid("Batch", root)) == 0
    assert await run("compare", gid("Batch", root), "--fail-on-regression") == 1
    assert await run("compare", gid("Batch", root), "--threshold", "5") == 0
    out = capsys.readouterr().out
    assert "no regressions" in out  # at 500 % nothing is flagged
    assert await run("compare", gid("Batch", root + 1)) == 2  # not a root
    assert "NOT_FOUND" in capsys.readouterr().err
    assert await run("compare", gid("Batch", root), "--threshold", "-1") == 2
    assert "VALIDATION_FAILED" in capsys.readouterr().err
