"""What the command line shows a person: errors in one line, the start-up banner, logs."""

from __future__ import annotations

import logging
import sys

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.text import Text

from db.config import Settings
from db.logs import configure_logging

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def error(message: str) -> None:
    err.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)


def setup_logging(
    settings: Settings, *, role: str, filters: list[logging.Filter] | None = None
) -> None:
    configure_logging(
        role=role,
        level=settings.log_level,
        fmt=settings.log_format,
        access_log=settings.access_log,
        filters=filters or [],
    )


def started(url: str, admin_secret: str | None) -> None:
    """After start-up, apart from the log lines: where to go, and the one-time token."""
    lines = Text()
    lines.append("batchgraph is up\n\n", style="bold")
    lines.append("GraphiQL  ")
    lines.append(url, style="bold cyan")
    if admin_secret is not None:
        lines.append("\n\nFirst start: an admin token was created. ")
        lines.append("It is shown only this once:\n\n", style="bold")
        lines.append(f"  {admin_secret}\n\n", style="bold green")
        lines.append("In GraphiQL's Headers tab:  ")
        lines.append('{"Authorization": "Bearer <token>"}\n')
        lines.append("For the command line:       ")
        lines.append("export BATCHGRAPH_TOKEN=<token>")
    else:
        lines.append("\n\nLost the admin token? ")
        lines.append("batchgraph token create --role admin --owner you", style="bold")
    # A plain, unstyled copy when the output is not a terminal (logs, tests): the
    # block still stands out, and the token is on a line of its own.
    console = Console(file=sys.stdout, highlight=False)
    console.print()
    console.print(Panel(lines, expand=False, border_style="green"))
    console.print()
    sys.stdout.flush()
