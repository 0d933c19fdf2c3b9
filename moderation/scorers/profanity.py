"""The word-list profanity scorer: finds listed words (leetspeak and spaced-out spellings included) and
returns them as spans, minus anything inside an allow-listed phrase.

Matching runs on the folded text (see `moderation.folding`), so Unicode look-alikes and invisible
characters do not hide a listed word; spans always point into the text as generated.

Why a word list next to a model: it says exactly *where* the bad word is, so the text can be masked
instead of withheld, and it is fast enough to run on every streamed chunk.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
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
    outermost,
)

__all__ = ["CATEGORY", "LIST_REFS", "ProfanityScorer", "list_refs"]

CATEGORY = "profanity"
# How an extended scorer's version names the stored lists it holds: `...+lists-3.2,7.1` (list 3 at
# version 2, list 7 at version 1). Stored list versions never change, so these references plus the base
# entries say exactly which entries a decision was made with.
LIST_REFS = re.compile(r"\+lists-((?:\d+\.\d+)(?:,\d+\.\d+)*)$")


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
        self._set_entries(name, words, allow, refs=())

    def _set_entries(
        self,
        name: str,
        words: Iterable[str],
        allow: Iterable[str],
        *,
        refs: Sequence[tuple[int, int]],
        matchers: tuple[WordMatcher, ...] | None = None,
    ) -> None:
        self._name = name
        self._words = tuple(dict.fromkeys(words))
        self._allow = tuple(dict.fromkeys(allow))
        # One matcher for the configured words; an extended scorer shares it and adds one for its extra
        # words only: compiling the built-in list costs ~0.1 s, a short extra list ~1 ms.
        self._matchers = matchers if matchers is not None else (WordMatcher(self._words),)
        self._allow_pattern = compile_allow_pattern(self._allow)
        digest = hashlib.sha256(
            "\n".join([MATCHER_VERSION, *sorted(self._words), "--allow--", *sorted(self._allow)]).encode()
        ).hexdigest()
        self._version = f"wordlist-{MATCHER_VERSION}-{digest[:12]}"
        if refs:
            self._version += "+lists-" + ",".join(f"{list_id}.{version}" for list_id, version in refs)
        self._refs = tuple(refs)
        self._context_words = max(max_phrase_words(self._words), max_phrase_words(self._allow)) - 1

    def extended(
        self,
        *,
        words: Iterable[str] = (),
        allow: Iterable[str] = (),
        refs: Sequence[tuple[int, int]] = (),
    ) -> ProfanityScorer:
        """This scorer plus more block and allow entries (runtime word lists): a new scorer, this one
        untouched. Allow entries also exempt matches of this scorer's own words (the built-in list
        included). `refs`: the (list id, list version) pairs the entries came from, named in the version
        (see LIST_REFS) so that each decision records the exact list versions it used."""
        known = set(self._words)
        extra = [w for w in dict.fromkeys(_entry(x) for x in words) if w and w not in known]
        out = ProfanityScorer.__new__(ProfanityScorer)
        out._set_entries(
            self._name,
            [*self._words, *extra],
            [*self._allow, *(a for a in (_entry(x) for x in allow) if a)],
            refs=sorted({*self._refs, *refs}),
            matchers=(*self._matchers, WordMatcher(extra)) if extra else self._matchers,
        )
        return out

    @property
    def list_refs(self) -> tuple[tuple[int, int], ...]:
        """The (list id, version) pairs this scorer was extended with; () for a configured one."""
        return self._refs

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
        if len(self._matchers) == 1:
            found = self._matchers[0].find(folded.text)
        else:
            found = outermost(span for matcher in self._matchers for span in matcher.find(folded.text))
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


def list_refs(version: str) -> tuple[tuple[int, int], ...]:
    """The (list id, list version) pairs a recorded scorer version names; () when it names none."""
    found = LIST_REFS.search(version)
    if found is None:
        return ()
    pairs = (ref.split(".") for ref in found.group(1).split(","))
    return tuple((int(a), int(b)) for a, b in pairs)


def _entry(raw: str) -> str:
    return " ".join(raw.split()).lower()
