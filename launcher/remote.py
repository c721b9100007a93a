"""Commands that talk to a running server: each one GraphQL call (or two) and a table.

``--url``/``--token`` default to BATCHGRAPH_URL/BATCHGRAPH_TOKEN; without a URL, the
server running from BATCHGRAPH_HOME (which notes its address there), else
BATCHGRAPH_HOST/BATCHGRAPH_PORT.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table

from db.config import load_settings
from domain import plural
from launcher import client as gql
from launcher import console
from launcher.client import Client, ClientError
from launcher.console import shown

Url = Annotated[
    str | None,
    typer.Option(
        help="the API [default: BATCHGRAPH_URL, else the server running from BATCHGRAPH_HOME]"
    ),
]
Token = Annotated[str | None, typer.Option(help="[default: BATCHGRAPH_TOKEN]")]


def _client(url: str | None, token: str | None) -> Client:
    settings = load_settings()
    return Client(gql.server_url(settings, url), gql.server_token(settings, token))


def _refused(payload: dict[str, Any]) -> None:
    """An error arm as a ClientError: its code and message, then each violation."""
    if "code" in payload:
        lines = [f"{payload['code']}: {payload.get('message', '')}"]
        lines += [f"  {v['path']}: {v['message']}" for v in payload.get("violations") or []]
        raise ClientError("\n".join(lines))


def submit(
    file: Annotated[Path, typer.Argument(help='{"title": …, "workspace": …, "definition": {…}}')],
    watch: Annotated[
        bool, typer.Option(help="follow it live; exit 1 if jobs failed or were canceled")
    ] = False,
    url: Url = None,
    token: Token = None,
) -> int:
    """Create a batch from a JSON file (a createBatch input)."""
    try:
        spec = json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        console.error(f"cannot read {file}: {exc}")
        return 2
    api = _client(url, token)
    created = api.call(gql.CREATE, {"input": spec})["createBatch"]
    if created["__typename"] != "BatchCreated":
        problems = (created.get("validation") or {}).get("errors")
        if not problems:
            _refused(created)  # NotFound (the workspace) and the like
            return 2
        for p in problems:
            where = ", ".join(
                part
                for part in (
                    p.get("path"),
                    f"node {p['node']}" if p.get("node") else None,
                    f"item {p['inputIndex']}" if p.get("inputIndex") is not None else None,
                )
                if part
            )
            console.error(f"{p['name']}{f' ({where})' if where else ''}: {p['description']}")
        return 2
    batch = created["batch"]
    console.out.print(
        f"batch {shown(batch['id'])} {shown(repr(batch['title']))}:"
        f" {plural.count(created['validation']['plannedJobs'], 'job')}"
    )
    if not watch:
        return 0
    from launcher.watch import failed_jobs_table, run_watch

    last = run_watch(api, batch["id"], batch["title"], console.out)
    if last.get("failed"):
        table = failed_jobs_table(api, batch["id"])
        if table is not None:
            console.out.print(table)
    return 1 if last.get("failed") or last.get("canceled") else 0


def _status(node: dict[str, Any]) -> str:
    c = node["counters"]
    if not node["isCreationDone"]:
        status = "creating"
    elif c["queued"] + c["running"] + c["pending"] + c["blocked"]:
        status = "running"
    elif c["failed"]:
        status = "[red]failed[/]"
    elif c["canceled"]:
        status = "[yellow]canceled[/]"
    else:
        status = "[green]completed[/]"
    return status + ("*" if node["isSuperseded"] else "")


def batches(
    workspace: Annotated[str | None, typer.Option(help="only this workspace")] = None,
    first: Annotated[int, typer.Option(min=1, max=100, help="how many, newest first")] = 20,
    url: Url = None,
    token: Token = None,
) -> int:
    """List batches with their status, newest first."""
    found = _client(url, token).call(gql.BATCHES, {"workspace": workspace, "first": first})
    listing = found["batches"]
    table = Table(
        title=f"batches ({listing['totalCount']}), newest first",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        caption=(
            "* superseded by a re-processing"
            if any(e["node"]["isSuperseded"] for e in listing["edges"])
            else None
        ),
        caption_justify="left",
    )
    # Ids are what the other commands take: they are never cut; the title gives way.
    table.add_column("id", no_wrap=True, min_width=12)
    table.add_column(
        "workspace/title",
        no_wrap=True,
        overflow="ellipsis",
        max_width=_room(12 + 10 + 5 + 6 + 7, 6),
    )
    table.add_column("status", no_wrap=True, min_width=10)
    table.add_column("jobs", justify="right", no_wrap=True, min_width=5)
    table.add_column("failed", justify="right", no_wrap=True, min_width=6)
    table.add_column("created", no_wrap=True, min_width=7)
    for edge in listing["edges"]:
        node = edge["node"]
        c = node["counters"]
        done = c["completed"] + c["failed"] + c["canceled"]
        table.add_row(
            shown(node["id"]),
            shown(f"{node['workspace']['name']}/{node['title']}"),
            _status(node),
            f"{done}/{c['jobsTotal']}",
            str(c["failed"]),
            _when(node["createdAt"]),
        )
    console.out.print(table)
    return 0


def cancel(
    id: Annotated[str, typer.Argument(help="a batch's or a job's id")],
    reason: Annotated[str | None, typer.Option(help="recorded in the jobs' history")] = None,
    url: Url = None,
    token: Token = None,
) -> int:
    """Cancel a batch (every unfinished job) or one job."""
    api = _client(url, token)
    kind = (api.call(gql.KIND, {"id": id})["node"] or {}).get("__typename")
    if kind == "Batch":
        done = api.call(gql.CANCEL_BATCH, {"id": id, "reason": reason})["cancelBatch"]
        _refused(done)
        console.out.print(
            f"batch {shown(done['batch']['id'])} {shown(repr(done['batch']['title']))}:"
            f" {plural.count(done['canceledJobs'], 'job')} canceled"
        )
    elif kind == "Job":
        done = api.call(gql.CANCEL_JOB, {"id": id, "reason": reason})["cancelJob"]
        _refused(done)
        job = done["job"]
        console.out.print(
            f"job {shown(job['id'])} ({shown(job['node'])}) is {shown(job['status'])}"
        )
    else:
        raise ClientError(f"NOT_FOUND: no batch or job {id!r} you may see")
    return 0


def retry(
    id: Annotated[str, typer.Argument(help="a batch's or a FAILED or CANCELED job's id")],
    include_canceled: Annotated[
        bool, typer.Option("--include-canceled", help="a batch's canceled jobs too")
    ] = False,
    url: Url = None,
    token: Token = None,
) -> int:
    """Retry a failed or canceled job, or every failed job of a batch, as new attempts."""
    api = _client(url, token)
    kind = (api.call(gql.KIND, {"id": id})["node"] or {}).get("__typename")
    if kind == "Batch":
        done = api.call(gql.RETRY_BATCH, {"id": id, "canceled": include_canceled})["retryBatch"]
        _refused(done)
        console.out.print(
            f"batch {shown(done['batch']['id'])} {shown(repr(done['batch']['title']))}:"
            f" {plural.count(done['retriedJobs'], 'job')} retried"
        )
        return 0
    if kind != "Job":
        raise ClientError(f"NOT_FOUND: no batch or job {id!r} you may see")
    done = api.call(gql.RETRY_JOB, {"id": id})["retryJob"]
    _refused(done)
    job = done["job"]
    console.out.print(
        f"job {shown(job['id'])} ({shown(job['node'])}) is {shown(job['status'])},"
        f" attempt {shown(job['attempt'])}"
    )
    return 0


def workers(
    all_: Annotated[bool, typer.Option("--all", help="disconnected ones too")] = False,
    url: Url = None,
    token: Token = None,
) -> int:
    """List the workers (fleet processes and pull workers)."""
    found = _client(url, token).call(
        gql.WORKERS, {"connected": None if all_ else True, "first": 100}
    )
    listing = found["workers"]
    table = Table(
        title=f"workers ({listing['totalCount']})", title_justify="left", box=box.SIMPLE_HEAD
    )
    # Names are what an admin acts on: never cut; the host gives way.
    table.add_column("name", no_wrap=True, min_width=16)
    table.add_column("kind", no_wrap=True, min_width=8)
    table.add_column(
        "host", no_wrap=True, overflow="ellipsis", max_width=_room(16 + 8 + 6 + 8 + 5 + 5, 7)
    )
    table.add_column("online", no_wrap=True, min_width=6)
    table.add_column("token", no_wrap=True, min_width=8)
    table.add_column("jobs", justify="right", no_wrap=True, min_width=5)
    table.add_column("seen", no_wrap=True, min_width=5)
    for edge in listing["edges"]:
        w = edge["node"]
        token_state = {True: "enabled", False: "[red]disabled[/]", None: "-"}[w["isTokenEnabled"]]
        seen = w["lastSeenAt"]
        table.add_row(
            shown(w["name"]),
            shown(w["kind"]).lower(),
            shown(w["host"]),
            "[green]yes[/]" if w["isConnected"] else "no",
            token_state,
            f"{w['jobs']['totalCount']}/{w['concurrency']}",
            _when(seen) if seen else "-",
        )
    console.out.print(table)
    return 0


def compare(
    root_id: Annotated[str, typer.Argument(help="the chain's root batch (its first batch)")],
    threshold: Annotated[
        float | None,
        typer.Option(help="flag changes beyond this fraction (0.2 = 20 %) [default: the server's]"),
    ] = None,
    min_seconds: Annotated[
        float | None,
        typer.Option(help="…and, for durations, of at least this many seconds"),
    ] = None,
    fail_on_regression: Annotated[
        bool, typer.Option(help="exit 1 when the chain's latest batch regressed (for CI)")
    ] = False,
    url: Url = None,
    token: Token = None,
) -> int:
    """Compare the batches of a re-processing chain: a table, regressions highlighted."""
    from launcher.compare import COMPARE, print_comparison

    found = _client(url, token).call(
        COMPARE, {"root": root_id, "threshold": threshold, "min": min_seconds}
    )["batchComparison"]
    if not found["batches"]:
        raise ClientError(
            f"NOT_FOUND: no chain has root {root_id!r} that you may read (a chain is named by"
            " its first batch: `batch(id: …) { rootBatch { id } }`)"
        )
    print_comparison(console.out, found, root=root_id)
    every = [*found["metrics"], *(s for n in found["nodes"] for s in n["metrics"])]
    regressed = any(s["isRegression"][-1] for s in every)
    return 1 if fail_on_regression and regressed else 0


def _room(fixed: int, columns: int) -> int:
    """What the terminal leaves for the one column that gives way (each column costs 2
    cells of padding, and the table one more)."""
    return max(8, console.out.width - fixed - 2 * columns - 8)


def _when(iso: str) -> str:
    """Local time, to the minute; the date only when it is not today."""
    moment = datetime.fromisoformat(iso).astimezone()
    today = datetime.now().astimezone().date()
    return moment.strftime("%H:%M" if moment.date() == today else "%Y-%m-%d %H:%M")


def register(app: typer.Typer) -> None:
    app.command()(submit)
    app.command()(batches)
    app.command()(cancel)
    app.command()(retry)
    app.command()(workers)
    app.command()(compare)
