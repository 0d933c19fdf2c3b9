"""Unicode evasion of the word list: invisible characters, compatibility forms, combining marks and
look-alike letters fold away before matching, and spans still point at the text as written."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from moderation import folding
from moderation.folding import fold, fold_char
from moderation.masking import Masker
from moderation.scorers.profanity import ProfanityScorer

ZWSP, ZWJ, WJ, SHY, BOM = "\u200b", "\u200d", "\u2060", "\u00ad", "\ufeff"
FULL_WIDTH = {c: c + 0xFEE0 for c in range(ord("!"), ord("~") + 1)}  # "a" -> U+FF41 and so on
# Cyrillic letters that look like Latin ones (written by name: a literal looks like the Latin letter)
CYR = {
    "a": "\N{CYRILLIC SMALL LETTER A}",
    "c": "\N{CYRILLIC SMALL LETTER ES}",
    "e": "\N{CYRILLIC SMALL LETTER IE}",
    "h": "\N{CYRILLIC SMALL LETTER SHHA}",
    "i": "\N{CYRILLIC SMALL LETTER BYELORUSSIAN-UKRAINIAN I}",
    "o": "\N{CYRILLIC SMALL LETTER O}",
    "p": "\N{CYRILLIC SMALL LETTER ER}",
    "s": "\N{CYRILLIC SMALL LETTER DZE}",
    "t": "\N{CYRILLIC SMALL LETTER TE}",
}


def wide(text: str) -> str:
    return text.translate(FULL_WIDTH)


def cyr(text: str, letters: str) -> str:
    """`text` with `letters` swapped for their Cyrillic look-alikes."""
    return "".join(CYR[c] if c in letters else c for c in text)


def bold(text: str) -> str:
    return "".join(chr(0x1D41A + ord(c) - ord("a")) if c.islower() else c for c in text)


@pytest.mark.parametrize(
    ("text", "folded"),
    [
        (f"f{ZWSP}u{ZWJ}c{WJ}k", "fuck"),
        (f"s{SHY}h{BOM}it", "shit"),
        (wide("fuck"), "fuck"),  # full-width
        (
            bold("fuck") + " \N{MATHEMATICAL BOLD SCRIPT SMALL S}\N{MATHEMATICAL BOLD SCRIPT SMALL H}it",
            "fuck shit",
        ),  # mathematical bold, script
        ("\u24d5\u24e4\u24d2\u24da \u24a1\u24b0\u249e\u24a6", "fuck fuck"),  # circled, parenthesised
        ("fu\u0308c\u0327k", "fuck"),  # combining marks
        ("füçk", "fuck"),  # precomposed letters
        (cyr("fuck off", "co"), "fuck off"),  # Cyrillic c, o
        (cyr("shit", "shit"), "shit"),  # all Cyrillic
        ("\u0392\u0399\u03a4C\u0397", "BITCH"),  # Greek capital beta, iota, tau, Latin C, Greek eta
        ("\ua730\u1d1c\u1d04\u1d0b", "fuck"),  # Latin small capitals F U C K
        ("a\u3000b\u00a0c", "a b c"),  # wide and no-break spaces are spaces
        ("plain ASCII stays", "plain ASCII stays"),
    ],
)
def test_fold(text: str, folded: str) -> None:
    assert fold(text).text == folded


def test_plain_ascii_is_returned_as_it_is() -> None:
    text = "the quick brown fox " * 50
    folded = fold(text)
    assert folded.text is text and folded.identical
    assert folded.map_span(4, 9) == (4, 9)


def test_fold_char_drops_invisible_characters_and_marks() -> None:
    for ch in (ZWSP, ZWJ, WJ, SHY, BOM, "\u202e", "\U000e0041", "\u3164", "\u0301", "\u20dd"):
        assert fold_char(ch) == "", ascii(ch)
    assert fold_char("\N{LATIN SMALL LIGATURE FI}") == "fi" and fold_char("é") == "e"
    assert fold_char("\N{LATIN SMALL LETTER SCHWA}") == "\N{LATIN SMALL LETTER SCHWA}"  # no look-alike


def masked(profanity: ProfanityScorer, text: str) -> str:
    return Masker().mask(text, profanity.find_spans(text))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # the zero-width characters inside the word are masked with it; the ones outside stay
        (f"oh {ZWSP}f{ZWSP}u{ZWSP}c{ZWSP}k{ZWSP} it", f"oh {ZWSP}f******{ZWSP} it"),
        ("what the " + wide("fuck") + ".", "what the " + wide("f") + "***."),
        ("fu\u0308ck\u0301 off", "f***** off"),  # marks, after the last letter too, belong to the word
        (cyr("what the fuck", "c"), "what the f***"),
        (cyr("shit", "shit") + " happens", CYR["s"] + "*** happens"),
        ("\ua730\u1d1c\u1d04\u1d0b this", "\ua730*** this"),
        (bold("you bitch"), bold("you b") + "****"),
        (f"f{ZWSP} u c k it", f"f{'*'} * * * it"),  # spaced out, with an invisible character
        (wide("sh1t and a$$"), wide("s") + "***" + wide(" and a") + "**"),  # full-width leetspeak
    ],
)
def test_evasions_are_masked_in_the_original_text(
    profanity: ProfanityScorer, text: str, expected: str
) -> None:
    out = masked(profanity, text)
    assert out == expected and len(out) == len(text)
    assert profanity.find_spans(out) == ()  # re-moderating the masked text finds nothing


@pytest.mark.parametrize(
    "text",
    [
        "Привет, как дела? Сок и сосок, тот кот.",
        "Τι κάνεις; Ο καιρός είναι καλός.",  # noqa: RUF001 (Greek)
        "naïve café résumé façade Æsir",
        wide("Scunthorpe") + " United",  # full-width, still on the allow-list
        cyr("Scunthorpe United", "cope"),  # Cyrillic look-alikes, still on the allow-list
        wide("class assessment"),
        cyr("Moby Dick is a novel", "oic"),
        "日本語のテキスト、中文文本",
    ],
)
def test_innocent_non_ascii_texts_are_not_flagged(profanity: ProfanityScorer, text: str) -> None:
    assert profanity.find_spans(text) == ()


# Ways to disguise one letter of a word: what a reader would still read as that letter.
def _fullwidth(ch: str) -> str:
    return chr(ord(ch) + 0xFEE0)


_LOOKALIKE = {**CYR, "u": "\N{LATIN LETTER SMALL CAPITAL U}"}
letter_forms = st.sampled_from(["plain", "fullwidth", "mark", "lookalike", "bold"])
invisible = st.sampled_from(["", "", ZWSP, ZWJ, WJ, SHY, BOM])


def _disguise_letter(ch: str, form: str) -> str:
    if form == "fullwidth":
        return _fullwidth(ch)
    if form == "mark":
        return ch + "\u0301"
    if form == "lookalike":
        return _LOOKALIKE.get(ch, ch)
    if form == "bold":
        return chr(0x1D41A + ord(ch) - ord("a"))
    return ch


@st.composite
def disguised(draw: st.DrawFn) -> tuple[str, str]:
    word = draw(st.sampled_from(["fuck", "shit", "bitch", "cunt", "asshole"]))
    parts = []
    for i, ch in enumerate(word):
        parts.append(_disguise_letter(ch, draw(letter_forms)))
        if i < len(word) - 1:
            parts.append(draw(invisible))
    return word, "".join(parts)


clean_words = st.lists(
    st.sampled_from(
        ["the", "garden", "blue", "table", "river", "\N{GREEK CAPITAL LETTER ZETA}", "кот", "café"]
    ),
    max_size=4,
)


@settings(max_examples=300, deadline=None)
@given(before=clean_words, target=disguised(), after=clean_words, edge=invisible)
def test_a_disguised_word_maps_back_to_exactly_its_characters(
    profanity: ProfanityScorer, before: list[str], target: tuple[str, str], after: list[str], edge: str
) -> None:
    word, written = target
    head = " ".join([*before, ""]) + edge
    text = head + written + edge + " ".join(["", *after])
    spans = profanity.find_spans(text)
    assert [(s.start, s.end) for s in spans] == [(len(head), len(head) + len(written))], (word, ascii(text))
    out = Masker().mask(text, spans)
    assert len(out) == len(text)
    assert out[: len(head)] == head and out[len(head) + len(written) :] == text[len(head) + len(written) :]
    assert fold(out[len(head) : len(head) + len(written)]).text.strip("*") == fold(written).text[0]


@settings(max_examples=300, deadline=None)
@given(
    text=st.text(
        alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)) | st.sampled_from([ZWSP, "\u0301"]),
        max_size=40,
    ),
    data=st.data(),
)
def test_every_folded_span_maps_to_the_characters_that_produced_it(text: str, data: st.DataObject) -> None:
    folded = fold(text)
    if not folded.text:
        return
    start = data.draw(st.integers(0, len(folded.text) - 1))
    end = data.draw(st.integers(start + 1, len(folded.text)))
    a, b = folded.map_span(start, end)
    assert 0 <= a < b <= len(text)

    def prefix(n: int) -> int:  # folded length of the first n original characters
        return len(fold(text[:n]).text)

    assert prefix(a) <= start < prefix(a + 1)  # `a` is the character that produced folded[start]
    first_end = next(n for n in range(a + 1, len(text) + 1) if prefix(n) >= end)
    assert first_end <= b  # it covers the character that produced folded[end - 1] ...
    for ch in text[first_end:b]:  # ... and past it only the marks attached to it
        assert unicodedata.category(ch).startswith("M") and fold_char(ch) == ""
    assert folded.text[start:end] in fold(text[a:b]).text


def test_the_fold_cache_is_bounded() -> None:
    """Any client can send text to the word list (`POST /score`); one text with every code point must not
    grow the per-process cache past its limit, and folding past the limit stays correct."""
    everything = "".join(chr(c) for c in range(0x80, 0x30000) if not 0xD800 <= c < 0xE000)
    folded = fold(everything)
    assert len(folding._TABLE) <= folding.CACHE_LIMIT
    assert folded.text == "".join(fold_char(c) for c in everything)
    assert fold(wide("fuck")).text == "fuck"
