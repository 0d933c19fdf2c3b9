"""Word lists: loading entries and compiling them into one regular expression.

Kept apart from the scorer so that the matching rules (whole words, leetspeak, spaced-out letters) can be
read and tested on their own. See `moderation/data/profanity_en.txt` for the entry format.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from importlib import resources
from pathlib import Path

__all__ = [
    "MATCHER_VERSION",
    "WordMatcher",
    "builtin_entries",
    "compile_allow_pattern",
    "is_plausible_match",
    "load_entries",
    "max_phrase_words",
    "normalise_entries",
    "outermost",
]

# Bump when the matching rules change, so that scorer versions (and the decisions recorded with them)
# tell old rules from new ones.
MATCHER_VERSION = "2"  # 2: matching on the folded text (moderation.folding)

# Common leetspeak substitutions. `*` is added for every letter but the first (f*ck, sh*t, a**hole).
_LEET: dict[str, str] = {
    "a": "a@4",
    "b": "b8",
    "c": "c(",
    "e": "e3",
    "g": "g9",
    "i": "i1!|",
    "l": "l1|",
    "o": "o0",
    "s": "s$5",
    "t": "t7+",
    "u": "uv",
}
# Characters allowed between spaced-out letters: "f u c k", "f.u.c.k", "f-u-c-k", "f_u_c_k".
_SEP = r"[\s._\-]{1,3}"
_SEP_CHARS = " \t\n._-"
# A letter or digit (\w without the underscore): what a word boundary must not touch.
_ALNUM = r"[^\W_]"
_WILD_LETTERS = r"[^\W\d_]*"


def builtin_entries(name: str) -> list[str]:
    """Entries of a list shipped in `moderation/data/` (e.g. "profanity_en", "allow_en")."""
    text = resources.files("moderation").joinpath("data", f"{name}.txt").read_text(encoding="utf-8")
    return normalise_entries(text.splitlines())


def load_entries(path: str | Path) -> list[str]:
    """Entries of an operator-supplied list file (same format as the built-in ones)."""
    return normalise_entries(Path(path).read_text(encoding="utf-8").splitlines())


def normalise_entries(lines: Iterable[str]) -> list[str]:
    """Strip comments and blanks, lower-case, collapse inner whitespace, de-duplicate (order kept)."""
    seen: dict[str, None] = {}
    for line in lines:
        entry = " ".join(line.split("#", 1)[0].split()).lower()
        if entry and entry.strip("*"):
            seen.setdefault(entry, None)
    return list(seen)


def max_phrase_words(entries: Iterable[str]) -> int:
    """The most words in any entry (1 for a list of single words)."""
    return max((len(e.split()) for e in entries), default=1)


def _letter_class(ch: str, *, first: bool) -> str:
    chars = _LEET.get(ch, ch)
    if not first:
        chars += "*"
    return "[" + "".join(re.escape(c) for c in chars) + "]"


def _compact(word: str) -> str:
    """One word, letters possibly repeated (fuuuck) or leet-substituted (sh1t, a$$, f*ck)."""
    parts = []
    for i, ch in enumerate(word):
        if ch.isalpha():
            parts.append(_letter_class(ch, first=i == 0) + "+")
        else:
            parts.append(re.escape(ch))
    return "".join(parts)


def _spaced(word: str, *, suffix_wild: bool) -> str | None:
    """The word's letters one by one with separators between them: "f u c k", "s.h.1.t"."""
    if len(word) < 3 or not word.isalpha():
        return None
    letters = [_letter_class(ch, first=True) for ch in word]
    body = _SEP.join(letters)
    if suffix_wild:
        body += rf"(?:{_SEP}{_ALNUM})*"
    # Not the tail of a longer spaced-out word ("c l a s s") nor its head ("a s s e s s m e n t"); the
    # single-letter words "a" and "I" may stand next to one ("a f u c k", "f u c k a dog").
    single = "[b-hj-zB-HJ-Z0-9]"
    not_after_lone = rf"(?:(?<!{single}[\s._\-])|(?<={_ALNUM}{single}[\s._\-]))"
    return rf"{not_after_lone}{body}(?!{_SEP}{single}(?!{_ALNUM}))"


def _entry_patterns(entry: str) -> list[str]:
    suffix_wild = entry.endswith("*")
    core = entry.strip("*")
    words = core.split()
    compact = r"\s+".join(_compact(w) for w in words)
    if suffix_wild:
        compact += _WILD_LETTERS
    patterns = [compact]
    if len(words) == 1 and not entry.startswith("*"):
        spaced = _spaced(core, suffix_wild=suffix_wild)
        if spaced:
            patterns.append(spaced)
    return patterns


class WordMatcher:
    """Finds list entries in a text: whole words, case-insensitive, in any tolerated spelling.

    Two compiled regexes: one for entries anchored at a word start (grouped by first character, so that
    each position tries one small group rather than every entry), one for `*word` entries that may end a
    longer word (searched without a left anchor, then widened to the word start: much cheaper than
    letting the engine try every prefix length at every word start).
    """

    def __init__(self, entries: Iterable[str]) -> None:
        by_lead: dict[str, list[str]] = {}
        suffixes: list[str] = []
        for entry in sorted(set(entries), key=lambda e: (-len(e), e)):
            if entry.startswith("*"):
                suffixes.extend(_entry_patterns(entry))
            else:
                by_lead.setdefault(_LEET.get(entry[0], entry[0]), []).extend(_entry_patterns(entry))
        groups = [
            "(?=[" + "".join(re.escape(c) for c in lead) + "])(?:" + "|".join(alts) + ")"
            for lead, alts in by_lead.items()
        ]
        self._anchored = _compile(rf"(?<!{_ALNUM})(?:{'|'.join(groups)})(?!{_ALNUM})", bool(groups))
        self._suffix = _compile(rf"(?:{'|'.join(suffixes)})(?!{_ALNUM})", bool(suffixes))

    def find(self, text: str) -> list[tuple[int, int]]:
        """`(start, end)` of each plausible match, in order, none nested in another."""
        found = [m.span() for m in self._anchored.finditer(text) if is_plausible_match(m.group())]
        for m in self._suffix.finditer(text):
            start, end = m.span()
            while start > 0 and text[start - 1].isalpha():
                start -= 1
            if is_plausible_match(text[start:end]):
                found.append((start, end))
        return outermost(found)


def outermost(found: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Spans in order, each one dropped when it lies inside the one kept before it (several matchers'
    hits on one text combine this way, as the two regexes of one matcher do)."""
    kept: list[tuple[int, int]] = []
    for start, end in sorted(found, key=lambda se: (se[0], -se[1])):
        if kept and start >= kept[-1][0] and end <= kept[-1][1]:
            continue
        kept.append((start, end))
    return kept


def _compile(pattern: str, non_empty: bool) -> re.Pattern[str]:
    return re.compile(pattern if non_empty else r"(?!x)x", re.IGNORECASE)


def compile_allow_pattern(entries: Iterable[str]) -> re.Pattern[str]:
    """Allow-list entries match literally (case-insensitive, any whitespace run), as whole words."""
    alternatives = []
    for entry in sorted(set(entries), key=lambda e: (-len(e), e)):
        words = entry.strip("*").split()
        alternatives.append(r"\s+".join(re.escape(w) for w in words))
    return _compile(rf"(?<!{_ALNUM})(?:{'|'.join(alternatives)})(?!{_ALNUM})", bool(alternatives))


def is_plausible_match(matched: str) -> bool:
    """Reject regex hits that are more likely innocent or already masked.

    - fewer than two real characters ("f***", "a**" are our own masked output; re-moderating a masked
      text must not flag it again);
    - as many digits as letters ("a55" is a phone model, not "ass"; "sh1t" still counts).
    """
    core = [c for c in matched if c not in _SEP_CHARS and not c.isspace()]
    real = [c for c in core if c != "*"]
    if len(real) < 2:
        return False
    letters = sum(c.isalpha() for c in core)
    digits = sum(c.isdigit() for c in core)
    return digits < letters
