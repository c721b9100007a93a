"""Free strings: blankness, length and invisible controls, in one check."""

from __future__ import annotations

import pytest

from domain.text import check_text


@pytest.mark.parametrize(
    "text",
    ["build-1.example.org", "Zoë's résumé", "日本語のタイトル", "emoji 🚀 and ZWJ 👩‍💻", "a b"],
)
def test_ordinary_text_is_accepted(text: str) -> None:
    assert check_text(text, "$.t", max_length=100, required=True) == []


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("esc\x1b[2J", "U+001B"),
        ("nul\x00", "U+0000"),
        ("bel\x07", "U+0007"),
        ("cr\r", "U+000D"),
        ("del\x7f", "U+007F"),
        ("csi\x9b", "U+009B"),
        ("rlo\u202e", "U+202E"),
        ("lre\u202a", "U+202A"),
        ("fsi\u2068", "U+2068"),
        ("pdi\u2069", "U+2069"),
    ],
)
def test_controls_and_bidi_formatting_are_refused_even_in_multi_line_text(
    text: str, code: str
) -> None:
    for multiline in (False, True):
        [violation] = check_text(text, "$.t", max_length=100, multiline=multiline)
        assert violation.path == "$.t"
        assert code in violation.message


def test_line_feeds_and_tabs_only_in_multi_line_text() -> None:
    assert check_text("a\nb\tc", "$.d", max_length=100, multiline=True) == []
    assert [v.path for v in check_text("a\nb", "$.t", max_length=100)] == ["$.t"]
    assert [v.path for v in check_text("a\tb", "$.t", max_length=100)] == ["$.t"]


def test_blank_long_and_absent() -> None:
    assert check_text(None, "$.t", max_length=3, required=True) == []
    assert check_text(" ", "$.t", max_length=3) == []
    assert [v.message for v in check_text(" ", "$.t", max_length=3, required=True)] == [
        "must be 1–3 characters, not blank"
    ]
    assert [v.message for v in check_text("abcd", "$.t", max_length=3)] == [
        "must be at most 3 characters"
    ]
