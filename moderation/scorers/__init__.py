"""Scorers: one per module. Heavy ones (detoxify, alt-profanity-check) are imported only when built.

Import `moderation.scorers.profanity`, `moderation.scorers.detoxify_scorer` or
`moderation.scorers.profanity_check` directly; this package deliberately imports nothing heavy.
"""

from moderation.scorers.base import Scorer, ScoreResult, Span, StreamHint

__all__ = ["ScoreResult", "Scorer", "Span", "StreamHint"]
