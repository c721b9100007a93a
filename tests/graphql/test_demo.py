"""`batchgraph demo` seeds a public chain anyone can explore at once."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import pytest

from db.session import Database
from launcher.cli import main
from tests.graphql.conftest import Api


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


async def test_demo_seeds_a_chain_to_explore_anonymously(
    api: Api,
    db: Database,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("BROKER_URL", "redis://127.0.0.1:1/0")  # the demo sends nothing
    assert await asyncio.to_thread(main, ["demo"]) == 0
    assert "Seeded the public workspace 'demo'" in capsys.readouterr().out

    data = await api.data("""{ batches(filter: {workspace: "demo"}) { edges { node { title
        isSuperseded counters { jobsTotal completed failed canceled pending queued blocked
            recipesTotal recipesCompleted }
        metrics { node completed failed runDuration { avg { iso } } }
        chain { title } } } } }""")  # anonymous: the demo workspace is public
    first, second = (e["node"] for e in data["batches"]["edges"])
    assert first["isSuperseded"] is True
    assert first["counters"] == {
        "jobsTotal": 40,
        "completed": 34,
        "failed": 3,
        "canceled": 3,
        "pending": 0,
        "queued": 0,
        "blocked": 0,
        "recipesTotal": 20,
        "recipesCompleted": 17,
    }
    assert [(m["node"], m["completed"], m["failed"]) for m in first["metrics"]] == [
        ("resize", 17, 3),
        ("thumbnail", 17, 0),
    ]
    assert first["metrics"][0]["runDuration"]["avg"]["iso"].startswith("PT")
    # The failed part again: the 3 failed recipes, both nodes (resize failed, so its
    # thumbnail was canceled).
    assert second["isSuperseded"] is False
    assert second["counters"]["recipesTotal"] == 3
    assert (second["counters"]["queued"], second["counters"]["blocked"]) == (3, 3)
    assert [b["title"] for b in second["chain"]] == [first["title"], second["title"]]

    assert await asyncio.to_thread(main, ["demo"]) == 0  # a second run adds nothing
    assert "exists already" in capsys.readouterr().out
