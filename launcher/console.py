"""What the command line shows a person: errors in one line, the start-up banner, logs.

Text that comes from a server (names, hosts, titles, messages, errors) is shown
through ``shown`` and nothing else: it may hold control characters (a worker host
``evil\x1b]0;PWNED\x07\x1b[2J`` retitles and clears an admin's terminal) or
bidirectional overrides (``\u202e`` makes a name read as another), stored before
the server refused them or sent by a server that does not. They are printed as
visible escapes, never raw.
"""

from __future__ import annotations

import logging
import re
import sys

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.text import Text

from db.config import Settings
from db.logs import configure_logging

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

_BIDI = "\u202a-\u202e\u2066-\u2069"
_ONE_LINE = re.compile(f"[\x00-\x1f\x7f-\x9f{_BIDI}]")
_MULTI_LINE = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{_BIDI}]")  # keeps \t and \n


def _visible(found: re.Match[str]) -> str:
    code = ord(found.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def shown(value: object, *, markup: bool = True, multiline: bool = False) -> str:
    """``value`` as it may reach a terminal: control and bidirectional formatting
    characters as escapes (``\\x1b``, ``\\u202e``); with ``markup`` (where the text
    goes into a Rich markup string or a table cell), Rich markup escaped too.
    ``multiline`` keeps line feeds and tabs (a message column)."""
    text = (_MULTI_LINE if multiline else _ONE_LINE).sub(_visible, str(value))
    return escape(text) if markup else text


def error(message: str) -> None:
    err.print(f"[bold red]error:[/] {shown(message)}", soft_wrap=True)


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
        lines.append(".venv/bin/batchgraph token create --role admin --owner you", style="bold")
    # A plain, unstyled copy when the output is not a terminal (logs, tests): the
    # block still stands out, and the token is on a line of its own.
    console = Console(file=sys.stdout, highlight=False)
    console.print()
    console.print(Panel(lines, expand=False, border_style="green"))
    console.print()
    sys.stdout.flush()
