"""``batchgraph compare ROOT_ID``: a chain's comparison as a table that fits the terminal.

One column per batch (the newest ones when they do not all fit), one row per metric
that matters to a person — per node: jobs done, failures, the failure rate, run and
job durations (avg, p50, p95) — each cell with its change from the previous batch.
Regressions are red with ▲, improvements green with ▼; a summary lists them, most
severe first, as the server sorted them.
"""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from launcher import console

COMPARE = """query Compare($root: ID!, $threshold: Float, $min: Float) {
  batchComparison(rootBatchId: $root, threshold: $threshold, minSeconds: $min) {
    threshold minSeconds regressionCount improvementCount
    batches { id title createdAt }
    metrics { ...series }
    nodes { node metrics { ...series } }
    regressions(first: 100) { ...finding }
    improvements(first: 100) { ...finding } } }
fragment series on MetricSeries {
  metric unit values changes percentChanges isRegression isImprovement }
fragment finding on ComparisonFinding {
  batch { id } node metric unit previous value percentChange }"""

# (label, metric) rows: the batch's own first, then each node's.
BATCH_ROWS = (("jobs done", "COMPLETED"), ("failed", "FAILED"), ("failure rate", "FAILURE_RATE"))
NODE_ROWS = (
    ("jobs done", "COMPLETED"),
    ("failed", "FAILED"),
    ("failure rate", "FAILURE_RATE"),
    ("run avg", "RUN_DURATION_AVG"),
    ("run p50", "RUN_DURATION_P50"),
    ("run p95", "RUN_DURATION_P95"),
    ("job p50", "JOB_DURATION_P50"),
    ("job p95", "JOB_DURATION_P95"),
)
LABELS = {m: label for label, m in (*BATCH_ROWS, *NODE_ROWS)} | {"JOB_DURATION_AVG": "job avg"}
LABEL_WIDTH = 22
CELL_WIDTH = 15  # "12.3 s +104% ▲"


def seconds(value: float) -> str:
    if value < 60:
        return f"{value:.3g} s"
    minutes, rest = divmod(round(value), 60)
    if minutes < 60:
        return f"{minutes}m{rest:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def show(unit: str, value: float | None) -> str:
    if value is None:
        return "-"
    if unit == "SECONDS":
        return seconds(value)
    if unit == "RATIO":
        return f"{value * 100:.3g} %"
    return f"{value:,.0f}"


def delta(unit: str, change: float | None, percent: float | None) -> str:
    """The change from the previous batch, short: % for durations, points for rates."""
    if change is None or not change:
        return ""
    if unit == "RATIO":
        return f"{change * 100:+.3g}pt"
    if unit == "SECONDS":
        if percent is None:
            return f"+{seconds(change)}"
        return f"{percent:+.0f}%" if abs(percent) >= 0.5 else ""  # no "-0%" for jitter
    return f"{change:+,.0f}"


def cell(series: dict[str, Any], i: int) -> Text:
    unit = series["unit"]
    text = Text(show(unit, series["values"][i]))
    change = delta(unit, series["changes"][i], series["percentChanges"][i])
    if series["isRegression"][i]:
        text.append(f" {change} ▲", style="bold red")
        text.stylize("bold red")
    elif series["isImprovement"][i]:
        text.append(f" {change} ▼", style="green")
        text.stylize("green")
    elif change:
        text.append(f" {change}", style="dim")
    return text


def fitting(width: int, batches: int) -> int:
    """How many batch columns fit beside the labels (two cells of padding each)."""
    return max(1, min(batches, (width - LABEL_WIDTH - 2) // (CELL_WIDTH + 2)))


def render(found: dict[str, Any], *, root: str, width: int) -> RenderableType:
    batches = found["batches"]
    shown = fitting(width, len(batches))
    first = len(batches) - shown
    numbers = {b["id"]: n for n, b in enumerate(batches, 1)}

    header = Text()
    header.append(f"chain {root}: {len(batches)} batches", style="bold")
    header.append(
        f" — flags at ±{found['threshold'] * 100:g} % (and ≥ {found['minSeconds']:g} s)",
        style="dim",
    )
    listing = Table(box=None, show_header=False, padding=(0, 1), pad_edge=False)
    listing.add_column(justify="right", no_wrap=True)
    listing.add_column(no_wrap=True, overflow="ellipsis", max_width=max(10, width - 24))
    listing.add_column(no_wrap=True, style="dim")
    for n, b in enumerate(batches, 1):
        listing.add_row(f"#{n}", console.shown(b["title"]), b["createdAt"][:16].replace("T", " "))

    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    table.add_column("", no_wrap=True, max_width=LABEL_WIDTH, overflow="ellipsis")
    for n in range(first, len(batches)):
        table.add_column(f"#{n + 1}", no_wrap=True, min_width=8, max_width=CELL_WIDTH)
    groups = [("batch", found["metrics"], BATCH_ROWS)] + [
        (node["node"], node["metrics"], NODE_ROWS) for node in found["nodes"]
    ]
    for g, (name, metrics, rows) in enumerate(groups):
        by_metric = {s["metric"]: s for s in metrics}
        table.add_row(Text(name, style="bold"))
        for r, (label, metric) in enumerate(rows):
            table.add_row(
                Text("  " + label),
                *[cell(by_metric[metric], i) for i in range(first, len(batches))],
                end_section=r == len(rows) - 1 and g < len(groups) - 1,
            )
    parts: list[RenderableType] = [header, listing, table]
    if first:
        parts.append(
            Text(
                f"(batches #1–#{first} left out to fit {width} columns: see GraphiQL, or a"
                " wider terminal)",
                style="dim",
            )
        )
    parts += summary("regressions", found["regressions"], found["regressionCount"], numbers)
    parts += summary("improvements", found["improvements"], found["improvementCount"], numbers)
    return Group(*parts)


def summary(
    title: str, findings: list[dict[str, Any]], count: int, numbers: dict[str, int]
) -> list[RenderableType]:
    """One line per batch and node (what a person acts on): its most severe finding,
    and how many more of its metrics moved the same way."""
    if not count:
        return [Text(f"no {title}", style="dim")]
    style, mark = ("bold red", "▲") if title == "regressions" else ("green", "▼")
    groups: dict[tuple[int, str], list[dict[str, Any]]] = {}
    for f in findings:  # most severe first: the first of each group leads it
        groups.setdefault((numbers[f["batch"]["id"]], f["node"] or "batch"), []).append(f)
    order = "most severe first" if mark == "▲" else "largest first"
    lines: list[RenderableType] = [Text(f"{title} ({count} metrics), {order}")]
    for (number, node), found in groups.items():
        f = found[0]
        unit, percent = f["unit"], f["percentChange"]
        change = (
            f"{(f['value'] - f['previous']) * 100:+.3g}pt"
            if unit == "RATIO"
            else (f"{percent:+.0f}%" if percent is not None else "from 0")
        )
        line = Text(f"  {mark} #{number} {node}", style=style)
        line.append(f": {LABELS.get(f['metric'], f['metric'].lower())} ")
        line.append(f"{show(unit, f['previous'])} → {show(unit, f['value'])} ({change})")
        if len(found) > 1:
            line.append(f" and {len(found) - 1} more", style="dim")
        line.no_wrap = True
        line.overflow = "ellipsis"
        lines.append(line)
    if count > len(findings):
        lines.append(Text(f"  … and {count - len(findings)} more metrics", style="dim"))
    return lines


def print_comparison(console: Console, found: dict[str, Any], *, root: str) -> None:
    console.print(render(found, root=root, width=console.width))
