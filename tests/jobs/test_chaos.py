"""The chaos bench, small: 100 numbered jobs through a kill -9 of a fleet worker, a
broker restart and a PostgreSQL restart (private instances), every job completed
exactly once. The full run is `python -m bench.chaos` (2,000 jobs, three kills)."""

from __future__ import annotations

import random
from pathlib import Path

from bench import chaos
from bench.private import Unavailable
from tests.conftest import require_service


async def test_chaos_small_every_numbered_job_completes_exactly_once(tmp_path: Path) -> None:
    seed = random.randrange(1_000_000)  # printed on failure: rerun with --seed
    config = chaos.Config(
        jobs=100,
        workers=2,
        threads=2,
        seconds=0.4,
        kills=1,
        down=5.0,
        broker_down=1.0,
        limit=120.0,
        seed=seed,
        logs=tmp_path,
        quiet=True,
    )
    try:
        report = await chaos.run(config)
    except Unavailable as exc:
        require_service("a private PostgreSQL and Redis", str(exc))
    summary = f"seed {seed}, logs in {tmp_path}\n{chaos.summary(report)}"
    # Every fault happened, and while jobs were still unfinished.
    assert [f.kind for f in report.faults].count("kill") == 1, summary
    assert all(f.unfinished for f in report.faults), summary
    assert report.violations == [], summary
    assert report.completed_once == 100
    assert (report.stranded, report.duplicates) == (0, 0)
