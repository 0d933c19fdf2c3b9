"""The word-list profanity scorer: finds listed words (leetspeak and spaced-out spellings included) and
returns them as spans, minus anything inside an allow-listed phrase.

Matching runs on the folded text (see `moderation.folding`), so Unicode look-alikes and invisible
characters do not hide a listed word; spans always point into the text as generated.

Why a word list next to a model: it says exactly *where* the bad word is, so the text can be masked
instead of withheld, and it is fast enough to run on every streamed chunk.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

from moderation.folding import fold
from moderation.scorers.base import BaseScorer
from moderation.types import ScoreResult, Span
from moderation.wordlist import (
    MATCHER_VERSION,
    WordMatcher,
    builtin_entries,
    compile_allow_pattern,
    load_entries,
    max_phrase_words,
)

__all__ = ["CATEGORY", "ProfanityScorer"]

CATEGORY = "profanity"


class ProfanityScorer(BaseScorer):
    """Whole-word, case-insensitive word-list matching. Score 1.0 when any span is found, else 0.0.

    Its version hashes the matching rules and every entry, so a decision can be traced to its list."""

    def __init__(
        self,
        *,
        name: str = "profanity",
        builtin_words: bool = True,
        builtin_allow: bool = True,
        extra_words: Iterable[str] = (),
        extra_allow: Iterable[str] = (),
        word_files: Iterable[str | Path] = (),
        allow_files: Iterable[str | Path] = (),
    ) -> None:
        """Build the matcher once (one compiled regex for the words, one for the allow-list)."""
        words: list[str] = builtin_entries("profanity_en") if builtin_words else []
        for path in word_files:
            words += load_entries(path)
        words += [w for w in (_entry(x) for x in extra_words) if w]
        allow: list[str] = builtin_entries("allow_en") if builtin_allow else []
        for path in allow_files:
            allow += load_entries(path)
        allow += [a for a in (_entry(x) for x in extra_allow) if a]
        self._name = name
        self._words = tuple(dict.fromkeys(words))
        self._allow = tuple(dict.fromkeys(allow))
        self._matcher = WordMatcher(self._words)
        self._allow_pattern = compile_allow_pattern(self._allow)
        digest = hashlib.sha256(
            "\n".join([MATCHER_VERSION, *sorted(self._words), "--allow--", *sorted(self._allow)]).encode()
        ).hexdigest()
        self._version = f"wordlist-{MATCHER_VERSION}-{digest[:12]}"
        self._context_words = max(max_phrase_words(self._words), max_phrase_words(self._allow)) - 1

    @property
    def words(self) -> tuple[str, ...]:
        return self._words

    @property
    def allow(self) -> tuple[str, ...]:
        return self._allow

    @property
    def stream_context_words(self) -> int:
        """Words of right context a span needs before it is final (phrases like "Dick Van Dyke")."""
        return self._context_words

    def find_spans(self, text: str) -> tuple[Span, ...]:
        """The flagged stretches of one text, in order, none inside an allow-listed phrase.

        Words and allow-list are matched on the folded text (`moderation.folding`: zero-width characters,
        full-width letters, combining marks and look-alike letters of other scripts do not hide a word);
        spans are offsets into `text` as given, covering the word's original characters."""
        folded = fold(text)
        found = self._matcher.find(folded.text)
        if not found:  # the common case: skip the allow-list scan
            return ()
        allowed = [m.span() for m in self._allow_pattern.finditer(folded.text)]
        return tuple(
            Span(*folded.map_span(start, end), CATEGORY, self._name)
            for start, end in found
            if not any(a <= start and end <= b for a, b in allowed)
        )

    def _score(self, texts: list[str]) -> list[ScoreResult]:
        """Spans per text; the score is binary because a listed word is either there or not."""
        results = []
        for text in texts:
            spans = self.find_spans(text)
            results.append(ScoreResult(scores={CATEGORY: 1.0 if spans else 0.0}, spans=spans))
        return results


def _entry(raw: str) -> str:
    return " ".join(raw.split()).lower()
