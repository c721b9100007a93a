"""safejson's shortcut: bodies without a ``\\u`` escape skip the string scan. Whatever
the value and however it is encoded, the shortcut refuses exactly what the full scan
refuses."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from graphql_api import safejson

# Text that includes NUL, other control characters and lone surrogates.
TEXT = st.text(st.characters(codec=None, min_codepoint=0, max_codepoint=0xE000), max_size=8)
VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**6), 10**6) | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=20,
)


def refusal(check: Callable[[], object]) -> str | None:
    try:
        check()
    except safejson.UnsafeJsonError as exc:
        return exc.reason
    return None


@given(VALUES, st.booleans())
def test_the_shortcut_refuses_what_the_full_scan_refuses(value: object, ascii_only: bool) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only)
    try:
        body = text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate has no UTF-8 form: only its escape
        body = json.dumps(value, ensure_ascii=True).encode()
    full = refusal(lambda: safejson.check_value(value, max_depth=50))
    assert refusal(lambda: safejson.loads(body, max_depth=47)) == full


def test_a_huge_clean_string_is_accepted_and_an_escaped_surrogate_is_not() -> None:
    assert safejson.loads(b'{"q": "' + b"x" * 1_000_000 + b'"}', max_depth=5) == {
        "q": "x" * 1_000_000
    }
    assert refusal(lambda: safejson.loads(b'{"q": "x\\ud800"}', max_depth=5)) is not None
    assert refusal(lambda: safejson.loads(b'{"q\\u0000": 1}', max_depth=5)) is not None


@pytest.mark.parametrize(
    "body",
    [
        b'{"q": "\x00"}',  # a raw NUL: JSON refuses control characters in strings
        b'{"q": "\xed\xa0\x80"}',  # a lone surrogate's bytes: not valid UTF-8
        b'{"\x00": 1}',
        b'{"q": ["a", "\xed\xbf\xbf"]}',
    ],
)
def test_without_a_backslash_nothing_bad_gets_through(body: bytes) -> None:
    assert b"\\" not in body
    with pytest.raises(json.JSONDecodeError):  # UnsafeJsonError is one
        safejson.loads(body, max_depth=5)
