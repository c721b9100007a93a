from __future__ import annotations

import re

from domain.errors import Violation

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
DEFAULT_WORKSPACE = "default"


def check_name(name: str, *, path: str = "$.name") -> list[Violation]:
    if NAME_PATTERN.match(name):
        return []
    return [
        Violation(
            path,
            "must be 1–63 characters of lower-case letters, digits, '-' or '_',"
            " starting with a letter or digit",
        )
    ]
