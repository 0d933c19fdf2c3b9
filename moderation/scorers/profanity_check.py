"""alt-profanity-check as a scorer: a linear SVM over a bag of words, trained on offensive comments.

Weak next to detoxify (it calls "you are stupid" as offensive as a slur, and has no notion of spans),
but small, shipped inside its package and fast: the offline demo's stand-in for a toxicity model.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import metadata

from moderation.types import ScoreResult

__all__ = ["CATEGORY", "ProfanityCheckScorer"]

CATEGORY = "profanity_ml"


class ProfanityCheckScorer:
    """Probability that a text is profane/offensive, in category "profanity_ml"."""

    def __init__(self, *, name: str = "profanity_check") -> None:
        """Imports the package (it loads its pickled model on import, ~1 s) once, at start-up."""
        from profanity_check import predict_prob

        self._predict_prob = predict_prob
        self._name = name
        self._version = f"alt-profanity-check-{metadata.version('alt-profanity-check')}"

    @property
    def name(self) -> str:
        return self._name

    @property
    def version(self) -> str:
        return self._version

    def score(self, texts: Sequence[str]) -> list[ScoreResult]:
        """One vectorised call for the whole batch (one call per text is ~500x slower)."""
        texts = list(texts)
        if not texts:
            return []
        probs = self._predict_prob(texts)
        return [ScoreResult(scores={CATEGORY: float(p)}) for p in probs]
