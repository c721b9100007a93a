"""JSON text for values bound as ``text[]`` parameters and cast to ``jsonb`` in SQL.

orjson writes the common case several times faster than ``json.dumps`` called once per
value; integers beyond 64 bits (the API accepts up to 100 digits) make it refuse, and
then the whole list is written by ``json.dumps``. ``jsonb`` reparses either text, so
the stored values are the same.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import orjson


def json_text(value: Any) -> str:
    """One value as JSON text (see json_texts)."""
    return json_texts([value])[0]


def json_texts(values: Iterable[Any]) -> list[str]:
    """Each value as JSON text, in order."""
    values = list(values)
    try:
        return [orjson.dumps(v).decode() for v in values]
    except (orjson.JSONEncodeError, TypeError):
        return [json.dumps(v) for v in values]
