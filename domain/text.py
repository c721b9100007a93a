"""Free strings from clients: one check for blankness, length and invisible controls.

Names, hosts, owners and titles end up in admins' terminals (``batchgraph workers``)
and in web pages. A control character there is not text but an instruction: ESC
starts terminal escape sequences (retitle the window, clear the screen, fake
output), BEL and friends make noise, and the bidirectional overrides and isolates
(U+202A–U+202E, U+2066–U+2069) make a string display as something else than it
is (``evil\\u202egnp.exe``). Such strings are refused, each with its field's path.
Multi-line text (descriptions, messages, reasons) may hold line feeds and tabs;
nothing else from C0 (U+0000–U+001F), DEL or C1 (U+0080–U+009F).

Every length limit of README "Free strings" goes through ``check_text``.
"""

from __future__ import annotations

import re

from domain.errors import Violation

_BIDI = "\u202a-\u202e\u2066-\u2069"
_ONE_LINE = re.compile(f"[\x00-\x1f\x7f-\x9f{_BIDI}]")
_MULTI_LINE = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{_BIDI}]")  # keeps \t (09) and \n (0a)


def check_text(
    value: str | None,
    path: str,
    *,
    max_length: int,
    required: bool = False,
    multiline: bool = False,
) -> list[Violation]:
    """Violations of one free string; ``None`` (an optional field left out) has none.

    ``required``: not blank. ``multiline``: line feeds and tabs are allowed.
    """
    if value is None:
        return []
    if required and not value.strip():
        return [Violation(path, f"must be 1–{max_length} characters, not blank")]
    if len(value) > max_length:
        return [Violation(path, f"must be at most {max_length} characters")]
    found = (_MULTI_LINE if multiline else _ONE_LINE).search(value)
    if found is not None:
        allowed = " (line feeds and tabs are)" if multiline else ""
        return [
            Violation(
                path,
                f"must not contain control or bidirectional formatting characters{allowed}:"
                f" U+{ord(found.group()):04X} at position {found.start()}",
            )
        ]
    return []
