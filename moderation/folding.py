"""Folding text for word-list matching: match what a reader sees, not the code points that spell it.

A word list compares letters, and Unicode offers many spellings of the same visible word that a plain
regex does not see: zero-width characters between the letters (`f\\u200bu\\u200bc\\u200bk`), full-width
or mathematical letters (`\\uff46\\uff55\\uff43\\uff4b`), combining marks (`fu\\u0308ck`), and look-alike
letters of other scripts (Cyrillic `\\u0441` for `c` in `fu\\u0441k`). `fold` maps each character of a
text to what it looks like, in this order:

1. format characters (category Cf: zero-width space/joiners, soft hyphen, bidi marks, BOM, tag
   characters) and the Hangul fillers, which render as nothing, are dropped;
2. compatibility decomposition (NFKD, the decomposition half of NFKC): full-width, mathematical,
   circled, superscript forms and ligatures become plain letters;
3. combining marks (categories Mn, Mc, Me) are dropped: `ü` -> `u`, and the marks stacked on a letter;
4. common confusables become the Latin letter they imitate: Cyrillic, Greek and Armenian look-alikes,
   Latin small capitals, dotless i, parenthesised and regional-indicator letters.

The folded text is for matching only; nothing folded is ever shown or released. `FoldedText.map_span`
maps a match back to the original characters (the dropped ones inside the word included), so masking
replaces exactly the characters of the word as written and leaves the rest of the text as it was.

Plain ASCII text is returned as it is (no character of it folds): the word filter runs on every output
and every streamed chunk, and most of them are ASCII.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field

__all__ = ["CACHE_LIMIT", "FoldedText", "fold", "fold_char"]

# Look-alikes of Latin letters that NFKD leaves alone, by Unicode name (a literal would look like the
# letter it imitates). The lists are the common ones in evasion (and in Unicode's confusables.txt), not
# all of them: a letter that imitates a Latin one only in some fonts is left out, because folding a real
# word of another script into an English swear word is a false positive. Upper-case look-alikes fold to
# upper case (matching is case-insensitive either way).
_LOOKALIKES: dict[str, tuple[str, ...]] = {
    "a": (
        "CYRILLIC SMALL LETTER A",
        "GREEK SMALL LETTER ALPHA",
        "LATIN LETTER SMALL CAPITAL A",
        "LATIN SMALL LETTER ALPHA",
    ),
    "b": ("CYRILLIC SMALL LETTER SOFT SIGN", "LATIN LETTER SMALL CAPITAL B"),
    "c": ("CYRILLIC SMALL LETTER ES", "LATIN LETTER SMALL CAPITAL C"),
    "d": ("CYRILLIC SMALL LETTER KOMI DE", "LATIN LETTER SMALL CAPITAL D"),
    "e": ("CYRILLIC SMALL LETTER IE", "GREEK SMALL LETTER EPSILON", "LATIN LETTER SMALL CAPITAL E"),
    "f": ("LATIN LETTER SMALL CAPITAL F",),
    "g": ("LATIN LETTER SMALL CAPITAL G", "LATIN SMALL LETTER SCRIPT G"),
    "h": ("CYRILLIC SMALL LETTER SHHA", "ARMENIAN SMALL LETTER HO", "LATIN LETTER SMALL CAPITAL H"),
    "i": (
        "CYRILLIC SMALL LETTER BYELORUSSIAN-UKRAINIAN I",
        "GREEK SMALL LETTER IOTA",
        "LATIN LETTER SMALL CAPITAL I",
        "LATIN SMALL LETTER DOTLESS I",
    ),
    "j": ("CYRILLIC SMALL LETTER JE", "LATIN LETTER SMALL CAPITAL J", "LATIN SMALL LETTER DOTLESS J"),
    "k": ("CYRILLIC SMALL LETTER KA", "GREEK SMALL LETTER KAPPA", "LATIN LETTER SMALL CAPITAL K"),
    "l": ("CYRILLIC SMALL LETTER PALOCHKA", "LATIN LETTER SMALL CAPITAL L"),
    "m": ("LATIN LETTER SMALL CAPITAL M",),
    "n": ("ARMENIAN SMALL LETTER VO", "LATIN LETTER SMALL CAPITAL N"),
    "o": (
        "CYRILLIC SMALL LETTER O",
        "GREEK SMALL LETTER OMICRON",
        "ARMENIAN SMALL LETTER OH",
        "LATIN LETTER SMALL CAPITAL O",
    ),
    "p": ("CYRILLIC SMALL LETTER ER", "GREEK SMALL LETTER RHO", "LATIN LETTER SMALL CAPITAL P"),
    "q": ("CYRILLIC SMALL LETTER QA",),
    "r": ("LATIN LETTER SMALL CAPITAL R",),
    "s": ("CYRILLIC SMALL LETTER DZE", "LATIN LETTER SMALL CAPITAL S"),
    "t": ("CYRILLIC SMALL LETTER TE", "GREEK SMALL LETTER TAU", "LATIN LETTER SMALL CAPITAL T"),
    "u": ("GREEK SMALL LETTER UPSILON", "ARMENIAN SMALL LETTER SEH", "LATIN LETTER SMALL CAPITAL U"),
    "v": ("GREEK SMALL LETTER NU", "LATIN LETTER SMALL CAPITAL V"),
    "w": ("CYRILLIC SMALL LETTER WE", "LATIN LETTER SMALL CAPITAL W"),
    "x": ("CYRILLIC SMALL LETTER HA", "GREEK SMALL LETTER CHI"),
    "y": (
        "CYRILLIC SMALL LETTER U",
        "CYRILLIC SMALL LETTER STRAIGHT U",
        "GREEK SMALL LETTER GAMMA",
        "LATIN LETTER SMALL CAPITAL Y",
    ),
    "z": ("LATIN LETTER SMALL CAPITAL Z",),
    "A": ("CYRILLIC CAPITAL LETTER A", "GREEK CAPITAL LETTER ALPHA"),
    "B": ("CYRILLIC CAPITAL LETTER VE", "CYRILLIC CAPITAL LETTER SOFT SIGN", "GREEK CAPITAL LETTER BETA"),
    "C": ("CYRILLIC CAPITAL LETTER ES",),
    "D": ("CYRILLIC CAPITAL LETTER KOMI DE",),
    "E": ("CYRILLIC CAPITAL LETTER IE", "GREEK CAPITAL LETTER EPSILON"),
    "H": ("CYRILLIC CAPITAL LETTER EN", "CYRILLIC CAPITAL LETTER SHHA", "GREEK CAPITAL LETTER ETA"),
    "I": (
        "CYRILLIC CAPITAL LETTER BYELORUSSIAN-UKRAINIAN I",
        "CYRILLIC LETTER PALOCHKA",
        "GREEK CAPITAL LETTER IOTA",
    ),
    "J": ("CYRILLIC CAPITAL LETTER JE",),
    "K": ("CYRILLIC CAPITAL LETTER KA", "GREEK CAPITAL LETTER KAPPA"),
    "M": ("CYRILLIC CAPITAL LETTER EM", "GREEK CAPITAL LETTER MU"),
    "N": ("GREEK CAPITAL LETTER NU",),
    "O": ("CYRILLIC CAPITAL LETTER O", "GREEK CAPITAL LETTER OMICRON"),
    "P": ("CYRILLIC CAPITAL LETTER ER", "GREEK CAPITAL LETTER RHO"),
    "Q": ("CYRILLIC CAPITAL LETTER QA",),
    "S": ("CYRILLIC CAPITAL LETTER DZE",),
    "T": ("CYRILLIC CAPITAL LETTER TE", "GREEK CAPITAL LETTER TAU"),
    "W": ("CYRILLIC CAPITAL LETTER WE",),
    "X": ("CYRILLIC CAPITAL LETTER HA", "GREEK CAPITAL LETTER CHI"),
    "Y": ("CYRILLIC CAPITAL LETTER U", "CYRILLIC CAPITAL LETTER STRAIGHT U", "GREEK CAPITAL LETTER UPSILON"),
    "Z": ("GREEK CAPITAL LETTER ZETA",),
}


def _confusables() -> dict[str, str]:
    table = {unicodedata.lookup(name): latin for latin, names in _LOOKALIKES.items() for name in names}
    for i in range(26):
        table[chr(0x249C + i)] = chr(ord("a") + i)  # PARENTHESIZED LATIN SMALL LETTER A.. (NFKD: "(a)")
        table[chr(0x1F1E6 + i)] = chr(ord("A") + i)  # REGIONAL INDICATOR SYMBOL LETTER A..
    return table


_CONFUSABLES = _confusables()
# Render as nothing but are letters (Lo), so the Cf rule does not catch them.
_INVISIBLE = frozenset("\u115f\u1160\u3164\uffa0")


def fold_char(ch: str) -> str:
    """What one character looks like, as zero or more characters (see the module docstring)."""
    if ch < "\x80":
        return ch
    if ch in _INVISIBLE or unicodedata.category(ch) == "Cf":
        return ""
    out = []
    for c in unicodedata.normalize("NFKD", _CONFUSABLES.get(ch, ch)):
        if unicodedata.category(c)[0] == "M":
            continue
        out.append(_CONFUSABLES.get(c, c))
    return "".join(out)


# The most code points the table keeps. Texts reach the word list from clients too (`POST /score`), and
# one text can hold every code point there is (1.1 million); past this many the rest are folded each time.
CACHE_LIMIT = 65536


class _FoldTable(dict[int, str]):
    """`str.translate` table filled on first sight of each code point: the translation runs in C, and a
    text's characters are folded once per process rather than once per text (up to `CACHE_LIMIT`)."""

    def __missing__(self, code: int) -> str:
        folded = fold_char(chr(code))
        if len(self) < CACHE_LIMIT:
            self[code] = folded
        return folded


_TABLE = _FoldTable()


@dataclass(frozen=True)
class FoldedText:
    """A text and its folded form. Offsets into `text` map back to `original` with `map_span`."""

    text: str
    original: str
    _origin: list[int] = field(default_factory=list, init=False, repr=False, compare=False)

    @property
    def identical(self) -> bool:
        """True when folding changed nothing (offsets are the same in both)."""
        return self.text is self.original or self.text == self.original

    def map_span(self, start: int, end: int) -> tuple[int, int]:
        """The original characters `[start, end)` of the folded text came from.

        Characters dropped inside the span (a zero-width space between letters) are inside the result;
        combining marks right after its last letter belong to that letter and are included too; dropped
        characters before or after the word are not. A folded span that starts or ends inside the
        expansion of one original character (`ﬀ` -> `ff`) covers that whole character.
        """
        if self.identical:
            return start, end
        if not 0 <= start < end <= len(self.text):
            raise ValueError(f"span {start}:{end} is not inside the folded text of length {len(self.text)}")
        origin = self._origins()
        first, last = origin[start], origin[end - 1] + 1
        while (
            last < len(self.original)
            and unicodedata.category(self.original[last])[0] == "M"
            and not _TABLE[ord(self.original[last])]
        ):
            last += 1
        return first, last

    def _origins(self) -> list[int]:
        """Index in `original` of each folded character; built on first use (only texts with a match)."""
        if not self._origin:
            for i, ch in enumerate(self.original):
                self._origin.extend([i] * len(_TABLE[ord(ch)]))
        return self._origin


def fold(text: str) -> FoldedText:
    """The text as a reader sees it, for matching (see the module docstring)."""
    if text.isascii():
        return FoldedText(text, text)
    return FoldedText(text.translate(_TABLE), text)
