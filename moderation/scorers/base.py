"""The scorer protocol (re-exported from `moderation.types`) and the optional streaming hint.

A scorer is anything with `name`, `version` and `score(texts) -> list[ScoreResult]`; no base class is
required. `BaseScorer` is there for the scorers in this package so that the name/version properties and
the empty-batch rule are written once. `StreamHint` is an optional extra a scorer may offer so that the
stream moderator knows how much right context its spans need before they are final.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from moderation.types import Scorer, ScoreResult, Span

__all__ = ["BaseScorer", "ScoreResult", "Scorer", "Span", "StreamHint", "check_results"]


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


class BaseScorer(ABC):
    """Name, version and the empty-batch rule, shared by the built-in scorers.

    Why: every scorer reported `name` / `version` through the same two properties and returned `[]` for an
    empty batch before touching its model; a subclass now only sets `_name` and `_version` in `__init__`
    (the version is computed from what was loaded) and scores a non-empty list in `_score`.
    """

    _name: str
    _version: str

    @property
    def name(self) -> str:
        return self._name

    @property
    def version(self) -> str:
        """Identifies the model/word list exactly enough to reproduce a decision later."""
        return self._version

    def score(self, texts: Sequence[str]) -> list[ScoreResult]:
        """One result per text; an empty batch never reaches the model (some tokenizers reject it)."""
        texts = list(texts)
        return self._score(texts) if texts else []

    @abstractmethod
    def _score(self, texts: list[str]) -> list[ScoreResult]:
        """Score a non-empty batch: exactly one result per text, in order."""
