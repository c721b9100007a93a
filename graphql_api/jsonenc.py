"""The response encoder: orjson, with already-rendered JSON passed through as is.

Why orjson: encoding was 5 % of a nested read when resolvers built the answer; with
PostgreSQL building the JSON of a compiled read, what is left for Python is to put
that text into the response. ``orjson.Fragment`` (behind ``RawJSON``) does exactly
that, without parsing it again, and orjson encodes everything else (errors,
extensions, resolver results) several times faster than ``json``. Values orjson
refuses (integers beyond 64 bits, which a JSON scalar may hold) fall back to the
standard library, so no answer is lost to the encoder.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


class RawJSON:
    """JSON text rendered elsewhere (by PostgreSQL), to be put into a response as is."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"RawJSON({self.text[:60]!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RawJSON) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)


def _fragment(value: object) -> orjson.Fragment:
    if isinstance(value, RawJSON):
        return orjson.Fragment(value.text)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def dumps(data: object) -> bytes:
    """UTF-8 JSON, non-ASCII characters as they are (like ``ensure_ascii=False``)."""
    try:
        return orjson.dumps(data, default=_fragment)
    except TypeError:
        return json.dumps(_thawed(data), separators=(",", ":"), ensure_ascii=False).encode()


def dumps_text(data: object) -> str:
    return dumps(data).decode()


def _thawed(value: Any) -> Any:
    """Fragments parsed back into values, for the standard library's encoder."""
    if isinstance(value, RawJSON):
        return json.loads(value.text)
    if isinstance(value, dict):
        return {k: _thawed(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_thawed(v) for v in value]
    return value
