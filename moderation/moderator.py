"""The Moderator: runs every scorer once per batch, merges their verdicts, applies a policy, masks.

Scorers in `scorers` see the text as generated. Scorers in `masked_scorers` see it with every span the
first group found already masked: useful for a model that should judge what is left once the profanity
is masked (alt-profanity-check calls "what the f***" clean but "you are a f****** idiot" offensive).

Two extras ride on the same scores. The identity-term check (`moderation.identity`) re-scores, once per
batch, the texts whose identity_attack / toxicity rule fired, with identity terms made neutral, so that a
block caused by naming a group becomes a hold. Shadow policies are evaluated beside the live one and
reported in `Decision.shadow`, so that a candidate policy can be measured without acting.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from moderation.identity import IdentityCheckSettings, NeutralScores, NeutralText
from moderation.masking import Masker
from moderation.policy import Policy, Verdict, categories_to_check, evaluate
from moderation.scorers.base import StreamHint, check_results
from moderation.streaming import StreamModerator, StreamSettings
from moderation.types import Action, Decision, Scorer, ScoreResult, ScorerInfo, ShadowDecision, Span

__all__ = ["Moderator", "StreamSettings", "UnknownPolicyError"]

log = logging.getLogger(__name__)


class UnknownPolicyError(KeyError):
    """A policy name the moderator was not configured with (a client or tenant setting is wrong)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown policy"


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
        identity_check: IdentityCheckSettings | None = None,
        shadow_policies: Sequence[str] = (),
    ) -> None:
        """Models are loaded by the caller (once, at start-up); the moderator only holds them.

        `identity_check` turns the identity-term check on (off when None); `shadow_policies` are the
        policies evaluated in shadow when `moderate` is not told otherwise."""
        all_scorers = [*scorers, *masked_scorers]
        if not all_scorers:
            raise ValueError("a moderator needs at least one scorer")
        names = [s.name for s in all_scorers]
        if len(set(names)) != len(names):
            raise ValueError(f"scorer names must be unique, got {names}")
        if default_policy not in policies:
            raise UnknownPolicyError(f"default policy {default_policy!r} is not among {sorted(policies)}")
        if isinstance(shadow_policies, str):
            raise TypeError("shadow_policies must be a sequence of policy names, not one string")
        for name in shadow_policies:
            if name not in policies:
                raise UnknownPolicyError(f"shadow policy {name!r} is not among {sorted(policies)}")
        self._scorers = tuple(scorers)
        self._masked_scorers = tuple(masked_scorers)
        self._policies = dict(policies)
        self._default_policy = default_policy
        self._masker = masker
        self._stream_settings = stream_settings or StreamSettings()
        self._scorers_info = tuple(ScorerInfo(s.name, s.version) for s in all_scorers)
        self._identity = identity_check
        self._shadow_names = tuple(dict.fromkeys(shadow_policies))

    @property
    def scorers_info(self) -> tuple[ScorerInfo, ...]:
        """Name and exact version of every scorer, recorded with each decision."""
        return self._scorers_info

    @property
    def scorers(self) -> tuple[Scorer, ...]:
        return self._scorers

    @property
    def masked_scorers(self) -> tuple[Scorer, ...]:
        return self._masked_scorers

    @property
    def policy_names(self) -> tuple[str, ...]:
        return tuple(self._policies)

    @property
    def default_policy(self) -> str:
        return self._default_policy

    @property
    def shadow_policies(self) -> tuple[str, ...]:
        """Policies evaluated in shadow by default (see `moderate`)."""
        return self._shadow_names

    @property
    def identity_check(self) -> IdentityCheckSettings | None:
        """The identity-term check's settings, or None when it is off."""
        return self._identity

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

    def with_policies(self, policies: Mapping[str, Policy]) -> Moderator:
        """A moderator with the same scorers (not reloaded), masking, streaming, identity check, default
        and shadow policies, deciding under `policies` instead: how a gateway applies a policy change at
        runtime without reloading models. Raises UnknownPolicyError when the default or a shadow policy
        is missing from `policies`."""
        return Moderator(
            self._scorers,
            policies,
            default_policy=self._default_policy,
            masker=self._masker,
            masked_scorers=self._masked_scorers,
            stream_settings=self._stream_settings,
            identity_check=self._identity,
            shadow_policies=self._shadow_names,
        )

    def with_scorers(self, replace: Callable[[Scorer], Scorer]) -> Moderator:
        """A moderator whose scorers are `replace(scorer)` (return the scorer itself to keep it), with
        everything else shared: how a gateway serves a tenant's extra word lists next to the configured
        ones without reloading any model."""
        return Moderator(
            [replace(s) for s in self._scorers],
            self._policies,
            default_policy=self._default_policy,
            masker=self._masker,
            masked_scorers=[replace(s) for s in self._masked_scorers],
            stream_settings=self._stream_settings,
            identity_check=self._identity,
            shadow_policies=self._shadow_names,
        )

    @property
    def policies(self) -> Mapping[str, Policy]:
        """Every policy by name (a read-only view)."""
        return MappingProxyType(self._policies)

    def policy(self, name: str | None = None) -> Policy:
        """The named policy (the default one for None); UnknownPolicyError for a name not configured."""
        key = self._default_policy if name is None else name
        try:
            return self._policies[key]
        except KeyError:
            raise UnknownPolicyError(f"unknown policy {key!r}; known: {', '.join(self._policies)}") from None

    def moderate(
        self,
        texts: Sequence[str],
        *,
        policy: str | None = None,
        shadow: Sequence[str] | None = None,
    ) -> list[Decision]:
        """One decision per text, in order. Every scorer is called once with the whole list.

        `shadow` names policies to evaluate beside the live one on the same scores (None = the configured
        `shadow_policies`, () = none); their decisions are in `Decision.shadow` and never act. When the
        identity check is on and a checked category holds or blocks under the live or a shadow policy,
        the scorers that produced it are called once more, with only the neutralised texts that need it.

        Scorer errors propagate: the caller must treat them as "not released" (never fail open). A NaN or
        infinite score is not an error but holds its text (see `moderation.policy.evaluate`), is logged
        with the scorer's name, and is left out of `Decision.scores`, which holds finite numbers only
        (the decision is stored as JSON, which has no NaN); the hold's reason names the category.
        """
        chosen = self.policy(policy)
        if isinstance(shadow, str):
            raise TypeError("shadow must be a sequence of policy names, not one string")
        names = self._shadow_names if shadow is None else tuple(dict.fromkeys(shadow))
        shadows = tuple(self.policy(name) for name in names)
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
        merged = [self._merge(results) for results in per_text]
        neutral = self._identity_rescore(texts, per_text, merged, (chosen, *shadows))
        return [
            self._decide(chosen, shadows, text, m, n)
            for text, m, n in zip(texts, merged, neutral, strict=True)
        ]

    def stream(self, *, policy: str | None = None, shadow: Sequence[str] | None = None) -> StreamModerator:
        """An incremental moderator for one generated text that arrives in pieces. Shadow policies are
        evaluated only by `finish()`, on the whole text."""
        if isinstance(shadow, str):
            raise TypeError("shadow must be a sequence of policy names, not one string")
        for name in shadow or ():
            self.policy(name)
        return StreamModerator(self, policy=self.policy(policy).name, shadow=shadow)

    def _merge(self, results: list[ScoreResult]) -> _Merged:
        """Max score per category over the scorers (remembering which gave it), and all spans.

        A non-finite score wins over every finite one (the first such scorer is remembered): `max` alone
        would drop a NaN that comes second (`0.2 > nan` and `nan > 0.2` are both false) or a -inf."""
        scores: dict[str, float] = {}
        sources: dict[str, str] = {}
        spans: list[Span] = []
        for scorer, result in zip((*self._scorers, *self._masked_scorers), results, strict=True):
            for category, raw in result.scores.items():
                value = float(raw)
                if not math.isfinite(value):
                    log.warning(
                        "scorer %r returned a non-finite %s score (%r): the text is held for review",
                        scorer.name,
                        category,
                        value,
                    )
                if _outranks(value, scores.get(category)):
                    scores[category] = value
                    sources[category] = scorer.name
            spans.extend(result.spans)
        spans.sort(key=lambda s: (s.start, s.end, s.category))
        return _Merged(scores, sources, tuple(spans))

    def _identity_rescore(
        self,
        texts: list[str],
        per_text: list[list[ScoreResult]],
        merged: list[_Merged],
        policies: tuple[Policy, ...],
    ) -> list[NeutralScores | None]:
        """Neutral scores for each text some policy holds or blocks on a checked category (None for the
        rest). Each scorer that produced such a category on some text is called once, with the neutral
        texts that need it; masked-input scorers get the neutral text masked at the mapped spans."""
        out: list[NeutralScores | None] = [None] * len(texts)
        if self._identity is None:
            return out
        jobs: dict[int, tuple[NeutralText, list[str]]] = {}
        for i, (text, m) in enumerate(zip(texts, merged, strict=True)):
            categories = categories_to_check(policies, m.scores, self._identity.categories)
            if categories:
                neutral = self._identity.terms.neutralise(text)
                if neutral.substitutions:  # no identity term: nothing to check
                    jobs[i] = (neutral, categories)
        if not jobs:
            return out
        found: dict[int, dict[str, float]] = {i: {} for i in jobs}
        direct = len(self._scorers)
        for k, scorer in enumerate((*self._scorers, *self._masked_scorers)):
            wanted = [i for i, (_, cats) in jobs.items() if any(c in per_text[i][k].scores for c in cats)]
            if not wanted:
                continue
            if k < direct:
                inputs = [jobs[i][0].text for i in wanted]
            else:
                inputs = [self._mask_neutral(jobs[i][0], per_text[i][:direct]) for i in wanted]
            results = check_results(scorer, len(wanted), scorer.score(inputs))
            for i, result in zip(wanted, results, strict=True):
                for category in jobs[i][1]:
                    if category in per_text[i][k].scores and category in result.scores:
                        value = float(result.scores[category])
                        if _outranks(value, found[i].get(category)):
                            found[i][category] = value
        version = self._identity.terms.version
        for i, (neutral, _) in jobs.items():
            # A non-finite neutral score is no evidence that the identity term fired the rule: that
            # category gets no check (so its block stands), and no NaN reaches the stored decision.
            finite = {c: v for c, v in found[i].items() if math.isfinite(v)}
            for category in found[i].keys() - finite.keys():
                log.warning(
                    "a non-finite %s score (%r) for the identity-neutral text: the identity check is skipped",
                    category,
                    found[i][category],
                )
            out[i] = NeutralScores(scores=finite, terms=neutral.terms, terms_version=version)
        return out

    def _mask_neutral(self, neutral: NeutralText, direct_results: list[ScoreResult]) -> str:
        spans = []
        for result in direct_results:
            for span in result.spans:
                start, end = neutral.map_span(span.start, span.end)
                spans.append(dataclasses.replace(span, start=start, end=end))
        return self._masker.mask(neutral.text, spans)

    def _decide(
        self,
        policy: Policy,
        shadows: tuple[Policy, ...],
        text: str,
        merged: _Merged,
        neutral: NeutralScores | None,
    ) -> Decision:
        def judge(p: Policy) -> Verdict:
            return evaluate(
                p,
                scores=merged.scores,
                spans=merged.spans,
                text=text,
                score_sources=merged.sources,
                neutral=neutral,
            )

        verdict = judge(policy)
        released = self._masker.mask(text, verdict.mask_spans) if verdict.action is Action.MASK else text
        shadow_decisions = []
        for p in shadows:
            v = judge(p)
            shadow_decisions.append(ShadowDecision(p.name, p.version, v.action, v.reasons, v.identity_checks))
        return Decision(
            action=verdict.action,
            text=released,
            original_text=text,
            scores={c: v for c, v in merged.scores.items() if math.isfinite(v)},
            reasons=verdict.reasons,
            spans=merged.spans,
            policy_name=policy.name,
            policy_version=policy.version,
            scorers=self._scorers_info,
            identity_checks=verdict.identity_checks,
            shadow=tuple(shadow_decisions),
        )


@dataclass(frozen=True)
class _Merged:
    scores: dict[str, float]
    sources: dict[str, str]
    spans: tuple[Span, ...]


def _outranks(value: float, current: float | None) -> bool:
    """Whether `value` replaces `current` in a max-merge: higher wins, and a non-finite value wins over a
    finite one, so that a broken score is never hidden by a good one."""
    if current is None:
        return True
    if not math.isfinite(current):
        return False
    return not math.isfinite(value) or value > current
