from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from moderation.masking import Masker, merge_spans
from moderation.types import Span


def span(start: int, end: int) -> Span:
    return Span(start, end, "profanity", "test")


def test_keep_first_and_full() -> None:
    text = "oh fuck it"
    assert Masker().mask(text, [span(3, 7)]) == "oh f*** it"
    assert Masker(style="full").mask(text, [span(3, 7)]) == "oh **** it"
    assert Masker(style="full", char="#").mask(text, [span(3, 7)]) == "oh #### it"


def test_separators_inside_a_span_are_kept() -> None:
    assert Masker().mask("f u c k", [span(0, 7)]) == "f * * *"
    assert Masker().mask("f.u.c.k", [span(0, 7)]) == "f.*.*.*"
    assert Masker(style="full").mask("a$$", [span(0, 3)]) == "***"


def test_overlapping_spans_are_merged() -> None:
    text = "abcdefghij"
    assert merge_spans([span(2, 6), span(4, 8), span(0, 1)]) == [(0, 1), (2, 8)]
    assert Masker().mask(text, [span(2, 6), span(4, 8)]) == "abc*****ij"
    assert Masker().mask(text, [span(2, 8), span(3, 5)]) == "abc*****ij"
    # touching spans stay separate: each keeps its own first letter
    assert Masker().mask(text, [span(0, 3), span(3, 6)]) == "a**d**ghij"


def test_unicode_around_spans_is_untouched() -> None:
    text = "😀 naïve fuck — 日本"
    start = text.index("fuck")
    out = Masker().mask(text, [span(start, start + 4)])
    assert out == "😀 naïve f*** — 日本"
    assert out.encode()[: text.encode().index(b"fuck")] == text.encode()[: text.encode().index(b"fuck")]


def test_no_spans_returns_same_text() -> None:
    assert Masker().mask("hello", []) == "hello"


@pytest.mark.parametrize("char", ["", "**", " ", "."])
def test_mask_char_must_keep_length(char: str) -> None:
    with pytest.raises(ValueError, match="mask char"):
        Masker(char=char)


@given(
    text=st.text(min_size=1, max_size=60),
    raw=st.lists(st.tuples(st.integers(0, 60), st.integers(0, 60)), max_size=5),
    style=st.sampled_from(["keep_first", "full"]),
)
def test_only_span_characters_change(text: str, raw: list[tuple[int, int]], style: str) -> None:
    spans = [span(min(a, b), max(a, b)) for a, b in raw]
    spans = [s for s in spans if s.end <= len(text)]
    out = Masker(style=style).mask(text, spans)
    assert len(out) == len(text)
    covered = {i for s in spans for i in range(s.start, s.end)}
    for i, (before, after) in enumerate(zip(text, out, strict=True)):
        if i not in covered or before.isspace() or before in "._-":
            assert after == before  # byte for byte outside spans (and separators inside them)
        else:
            assert after in (before, "*")
    # everything outside the spans encodes to the very same bytes
    outside = [i for i in range(len(text)) if i not in covered]
    assert "".join(out[i] for i in outside).encode() == "".join(text[i] for i in outside).encode()
