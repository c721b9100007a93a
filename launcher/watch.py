"""``submit --watch``: a live progress display that fits the terminal, then a summary.

Two lines: the bar with done/total, rate and ETA; the counts by status. Neither ever
wraps: the bar takes the width that is left, and the counts line is cut short with an
ellipsis on a narrow terminal rather than folded onto a second line.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
)
from rich.table import Column, Table
from rich.text import Text

from launcher.client import FAILED_JOBS, Client
from launcher.console import shown

# "waiting": QUEUED and PENDING (held back by maxParallelJobs or dispatch) together.
STATUSES = ("completed", "failed", "canceled", "running", "waiting", "blocked")
COUNTERS = (
    "completed",
    "failed",
    "canceled",
    "running",
    "queued",
    "pending",
    "blocked",
    "jobsTotal",
)
STYLES = {"completed": "green", "failed": "red", "canceled": "yellow", "running": "cyan"}


def _rate(task: Task) -> float | None:
    """Jobs finished per second since the watch began (steady even when jobs finish in
    bursts, where rich's sampled speed has nothing to go on)."""
    elapsed = task.elapsed
    if not elapsed or not task.completed:
        return None
    return task.completed / elapsed


class RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        rate = _rate(task)
        return Text("-- jobs/s" if rate is None else f"{rate:,.1f} jobs/s", style="magenta")


class EtaColumn(ProgressColumn):
    """ETA h:mm:ss at the rate so far; -:--:-- until there is one."""

    def render(self, task: Task) -> Text:
        rate = _rate(task)
        if task.total is not None and task.completed >= task.total:
            return Text("ETA 0:00:00", style="cyan")
        if rate is None or task.total is None:
            return Text("ETA -:--:--", style="cyan")
        seconds = int((task.total - task.completed) / rate)
        return Text(
            f"ETA {seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}", style="cyan"
        )


def counts_line(counters: dict[str, int]) -> Text:
    line = Text(no_wrap=True, overflow="ellipsis", end="")
    values = {**counters, "waiting": counters["queued"] + counters["pending"]}
    for i, status in enumerate(STATUSES):
        if i:
            line.append("  ")
        line.append(f"{status} ")
        line.append(f"{values[status]:,}", style=STYLES.get(status, "bold"))
    return line


def _progress(console: Console) -> Progress:
    cell = Column(no_wrap=True, overflow="ellipsis")
    return Progress(
        TextColumn("[bold]{task.description}", table_column=Column(no_wrap=True, max_width=24)),
        BarColumn(bar_width=None),
        MofNCompleteColumn(table_column=cell),
        RateColumn(table_column=cell),
        EtaColumn(table_column=cell),
        console=console,
        expand=True,
        auto_refresh=False,
    )


async def watch(client: Client, batch_id: str, title: str, console: Console) -> dict[str, int]:
    """Follow the batch live until every job is final; the last counters."""
    progress = _progress(console)
    task = progress.add_task(shown(title), total=None)
    last: dict[str, int] = dict.fromkeys(COUNTERS, 0)
    with Live(Group(progress, counts_line(last)), console=console, auto_refresh=False) as live:
        async for update in client.progress(batch_id):
            last = update["counters"]
            done = last["completed"] + last["failed"] + last["canceled"]
            total = last["jobsTotal"] if update["isCreationDone"] else None
            progress.update(task, completed=done, total=total)
            live.update(Group(progress, counts_line(last)), refresh=True)
    if not console.is_terminal:
        console.print()  # the last render ends without a line feed off a terminal
    return last


def failed_jobs_table(client: Client, batch_id: str, *, limit: int = 20) -> Table | None:
    found: Any = client.call(FAILED_JOBS, {"b": batch_id, "first": limit})["batch"]
    if found is None or not found["jobs"]["edges"]:
        return None
    jobs = found["jobs"]
    table = Table(
        title=f"failed jobs ({jobs['totalCount']})",
        title_justify="left",
        expand=False,
    )
    table.add_column("job", no_wrap=True)
    table.add_column("node", no_wrap=True, overflow="ellipsis", max_width=20)
    table.add_column("try", justify="right")
    table.add_column("code", style="red", no_wrap=True)
    table.add_column("message", overflow="fold")
    for edge in jobs["edges"]:
        job = edge["node"]
        error = job["error"] or {}
        table.add_row(
            shown(job["id"]),
            shown(job["node"]),
            shown(job["attempt"]),
            shown(error.get("code", "")),
            shown(error.get("message", ""), multiline=True),
        )
    if jobs["totalCount"] > limit:
        table.caption = f"the first {limit} of {jobs['totalCount']}"
    return table


def run_watch(client: Client, batch_id: str, title: str, console: Console) -> dict[str, int]:
    started = time.monotonic()
    last = asyncio.run(watch(client, batch_id, title, console))
    elapsed = time.monotonic() - started
    done = last["completed"] + last["failed"] + last["canceled"]
    console.print(
        Text(
            f"{shown(title, markup=False)}: {last['jobsTotal']:,} jobs in {elapsed:.1f} s"
            f" ({done / elapsed if elapsed else 0:,.1f} jobs/s)",
            no_wrap=True,
            overflow="ellipsis",
        )
    )
    return last
