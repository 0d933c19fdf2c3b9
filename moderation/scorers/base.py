"""The scorer protocol (re-exported from `moderation.types`) and the optional streaming hint.

A scorer is anything with `name`, `version` and `score(texts) -> list[ScoreResult]`; no base class to
inherit. `StreamHint` is an optional extra a scorer may offer so that the stream moderator knows how
much right context its spans need before they are final.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from moderation.types import Scorer, ScoreResult, Span

__all__ = ["ScoreResult", "Scorer", "Span", "StreamHint", "check_results"]


@runtime_checkable
class StreamHint(Protocol):
    """Optional: how many complete words after a span a scorer must see before that span is final.

    Why: a word list with the phrase "son of a bitch" or the allowed phrase "Dick Van Dyke" can only decide
    about the first word once the following words arrived; the stream moderator holds back that many words.
    """

    @property
    def stream_context_words(self) -> int: ...


def check_results(scorer: Scorer, texts_count: int, results: list[ScoreResult]) -> list[ScoreResult]:
    """Fail loudly if a scorer broke the one-result-per-text contract (a silent mismatch would shift
    every verdict onto the wrong text)."""
    if len(results) != texts_count:
        raise RuntimeError(f"scorer {scorer.name!r} returned {len(results)} results for {texts_count} texts")
    return results
