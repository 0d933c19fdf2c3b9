"""The Moderator: runs every scorer once per batch, merges their verdicts, applies a policy, masks.

Scorers in `scorers` see the text as generated. Scorers in `masked_scorers` see it with every span the
first group found already masked: useful for a model that should judge what is left once the profanity
is masked (alt-profanity-check calls "what the f***" clean but "you are a f****** idiot" offensive).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from moderation.masking import Masker
from moderation.policy import Policy, evaluate
from moderation.scorers.base import StreamHint, check_results
from moderation.streaming import StreamModerator
from moderation.types import Action, Decision, Scorer, ScoreResult, ScorerInfo, Span

__all__ = ["Moderator", "StreamSettings", "UnknownPolicyError"]


class UnknownPolicyError(KeyError):
    """A policy name the moderator was not configured with (a client or tenant setting is wrong)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown policy"


@dataclass(frozen=True)
class StreamSettings:
    """How a stream is released.

    right_context_words: complete words that must follow a chunk, and be scored with it, before it is sent.
    min_release_words: score again only once this many new complete words arrived (cost vs. latency).
    """

    right_context_words: int = 2
    min_release_words: int = 1

    def __post_init__(self) -> None:
        if self.right_context_words < 0 or self.min_release_words < 1:
            raise ValueError("right_context_words must be >= 0 and min_release_words >= 1")


class Moderator:
    """Scores batches of texts and decides, per text, under a named policy."""

    def __init__(
        self,
        scorers: Sequence[Scorer],
        policies: Mapping[str, Policy],
        *,
        default_policy: str,
        masker: Masker,
        masked_scorers: Sequence[Scorer] = (),
        stream_settings: StreamSettings | None = None,
    ) -> None:
        """Models are loaded by the caller (once, at start-up); the moderator only holds them."""
        all_scorers = [*scorers, *masked_scorers]
        if not all_scorers:
            raise ValueError("a moderator needs at least one scorer")
        names = [s.name for s in all_scorers]
        if len(set(names)) != len(names):
            raise ValueError(f"scorer names must be unique, got {names}")
        if default_policy not in policies:
            raise UnknownPolicyError(f"default policy {default_policy!r} is not among {sorted(policies)}")
        self._scorers = tuple(scorers)
        self._masked_scorers = tuple(masked_scorers)
        self._policies = dict(policies)
        self._default_policy = default_policy
        self._masker = masker
        self._stream_settings = stream_settings or StreamSettings()
        self._scorers_info = tuple(ScorerInfo(s.name, s.version) for s in all_scorers)

    @property
    def scorers_info(self) -> tuple[ScorerInfo, ...]:
        """Name and exact version of every scorer, recorded with each decision."""
        return self._scorers_info

    @property
    def policy_names(self) -> tuple[str, ...]:
        return tuple(self._policies)

    @property
    def default_policy(self) -> str:
        return self._default_policy

    @property
    def masker(self) -> Masker:
        return self._masker

    @property
    def stream_settings(self) -> StreamSettings:
        return self._stream_settings

    @property
    def stream_context_words(self) -> int:
        """The most right context any scorer asks for (see `StreamHint`)."""
        return max(
            (
                s.stream_context_words
                for s in (*self._scorers, *self._masked_scorers)
                if isinstance(s, StreamHint)
            ),
            default=0,
        )

    def policy(self, name: str | None = None) -> Policy:
        """The named policy (the default one for None); UnknownPolicyError for a name not configured."""
        key = self._default_policy if name is None else name
        try:
            return self._policies[key]
        except KeyError:
            raise UnknownPolicyError(f"unknown policy {key!r}; known: {', '.join(self._policies)}") from None

    def moderate(self, texts: Sequence[str], *, policy: str | None = None) -> list[Decision]:
        """One decision per text, in order. Every scorer is called once with the whole list.

        Scorer errors propagate: the caller must treat them as "not released" (never fail open).
        """
        chosen = self.policy(policy)
        texts = list(texts)
        if not texts:
            return []
        per_text: list[list[ScoreResult]] = [[] for _ in texts]
        for scorer in self._scorers:
            for i, result in enumerate(check_results(scorer, len(texts), scorer.score(texts))):
                per_text[i].append(result)
        if self._masked_scorers:
            masked = [
                self._masker.mask(t, [s for r in results for s in r.spans])
                for t, results in zip(texts, per_text, strict=True)
            ]
            for scorer in self._masked_scorers:
                for i, result in enumerate(check_results(scorer, len(texts), scorer.score(masked))):
                    per_text[i].append(result)
        return [self._decide(chosen, text, results) for text, results in zip(texts, per_text, strict=True)]

    def stream(self, *, policy: str | None = None) -> StreamModerator:
        """An incremental moderator for one generated text that arrives in pieces."""
        return StreamModerator(self, policy=self.policy(policy).name)

    def _decide(self, policy: Policy, text: str, results: list[ScoreResult]) -> Decision:
        scores: dict[str, float] = {}
        sources: dict[str, str] = {}
        spans: list[Span] = []
        for scorer, result in zip((*self._scorers, *self._masked_scorers), results, strict=True):
            for category, value in result.scores.items():
                if category not in scores or value > scores[category]:
                    scores[category] = float(value)
                    sources[category] = scorer.name
            spans.extend(result.spans)
        spans.sort(key=lambda s: (s.start, s.end, s.category))
        verdict = evaluate(policy, scores=scores, spans=spans, text=text, score_sources=sources)
        released = self._masker.mask(text, verdict.mask_spans) if verdict.action is Action.MASK else text
        return Decision(
            action=verdict.action,
            text=released,
            original_text=text,
            scores=scores,
            reasons=verdict.reasons,
            spans=tuple(spans),
            policy_name=policy.name,
            policy_version=policy.version,
            scorers=self._scorers_info,
        )
