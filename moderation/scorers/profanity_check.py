"""alt-profanity-check as a scorer: a linear SVM over a bag of words, trained on offensive comments.

Weak next to detoxify (it calls "you are stupid" as offensive as a slur, and has no notion of spans),
but small, shipped inside its package and fast: the offline demo's stand-in for a toxicity model.

It reads words, not meaning: "Dick Van Dyke was a great actor" scores 0.98. So the phrases of the word
list's allow-list (reviewed as innocent: names, "cock-a-doodle-doo", "stopcock") are taken out of the
text before it is scored, by default the same built-in list the word-list scorer uses.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from importlib import metadata

from moderation.scorers.base import BaseScorer
from moderation.types import ScoreResult
from moderation.wordlist import builtin_entries, compile_allow_pattern

__all__ = ["CATEGORY", "ProfanityCheckScorer"]

CATEGORY = "profanity_ml"


class ProfanityCheckScorer(BaseScorer):
    """Probability that a text is profane/offensive, in category "profanity_ml"."""

    def __init__(
        self, *, name: str = "profanity_check", builtin_allow: bool = True, extra_allow: Iterable[str] = ()
    ) -> None:
        """Imports the package (it loads its pickled model on import, ~1 s) once, at start-up.
        `builtin_allow` / `extra_allow`: phrases removed before scoring (as for the word-list scorer)."""
        from profanity_check import predict_prob

        self._predict_prob = predict_prob
        self._name = name
        allow = [*(builtin_entries("allow_en") if builtin_allow else []), *(a.strip() for a in extra_allow)]
        self._allow = tuple(dict.fromkeys(a for a in allow if a))
        self._allow_pattern = compile_allow_pattern(self._allow) if self._allow else None
        self._version = f"alt-profanity-check-{metadata.version('alt-profanity-check')}"
        if self._allow:  # a changed list changes scores: replay must be able to tell
            digest = hashlib.sha256("\n".join(sorted(self._allow)).encode()).hexdigest()
            self._version += f"+allow-{digest[:12]}"

    def _score(self, texts: list[str]) -> list[ScoreResult]:
        """One vectorised call for the whole batch (one call per text is ~500x slower)."""
        if self._allow_pattern is not None:
            texts = [self._allow_pattern.sub(" ", t) for t in texts]
        probs = self._predict_prob(texts)
        return [ScoreResult(scores={CATEGORY: float(p)}) for p in probs]
