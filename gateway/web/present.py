"""Turning stored outputs into what the pages show: plain data, never HTML.

Model output and prompts are untrusted. Highlighting therefore never builds markup: :func:`segments`
cuts the text into ``(text, categories)`` runs and the template wraps each flagged run in ``<mark>``,
with Jinja2's autoescaping applied to every run. Bars are expressed as whole percentages so that the
stylesheet can draw them with classes (the CSP forbids ``style`` attributes).
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Segment:
    """A run of the text; ``categories`` is empty for unflagged text."""

    text: str
    categories: tuple[str, ...] = ()

    @property
    def flagged(self) -> bool:
        return bool(self.categories)

    @property
    def label(self) -> str:
        return ", ".join(self.categories)


def _span_bounds(span: Any, length: int) -> tuple[int, int, str] | None:
    """A well-formed span clamped to the text, or None (stored spans are data, not trusted to be sane)."""
    if not isinstance(span, Mapping):
        return None
    start, end, category = span.get("start"), span.get("end"), span.get("category")
    if not isinstance(start, int) or not isinstance(end, int) or isinstance(start, bool):
        return None
    start, end = max(0, start), min(length, end)
    if start >= end:
        return None
    return start, end, str(category or "flagged")


def segments(text: str, spans: Any) -> list[Segment]:
    """Split ``text`` at every span boundary; overlapping spans give runs with several categories."""
    bounds = [b for b in (_span_bounds(s, len(text)) for s in (spans or [])) if b is not None]
    if not bounds:
        return [Segment(text)] if text else []
    cuts = sorted({0, len(text), *(b[0] for b in bounds), *(b[1] for b in bounds)})
    runs: list[Segment] = []
    for start, end in itertools.pairwise(cuts):
        categories = tuple(sorted({c for s, e, c in bounds if s <= start and end <= e}))
        piece = text[start:end]
        if runs and runs[-1].categories == categories:
            runs[-1] = Segment(runs[-1].text + piece, categories)
        else:
            runs.append(Segment(piece, categories))
    return runs


@dataclass(frozen=True)
class ReasonView:
    category: str
    score: float
    threshold: float
    action: str
    scorer: str


def reason_views(reasons: Any) -> list[ReasonView]:
    """The policy's reasons, most severe first as stored; excerpts are left out (the text is shown)."""
    views = []
    for r in reasons or []:
        if isinstance(r, Mapping):
            views.append(
                ReasonView(
                    category=str(r.get("category", "")),
                    score=_number(r.get("score")),
                    threshold=_number(r.get("threshold")),
                    action=str(r.get("action", "")),
                    scorer=str(r.get("scorer", "")),
                )
            )
    return views


@dataclass(frozen=True)
class ScoreBar:
    """One category's score against its threshold (None: no threshold known for this category)."""

    category: str
    score: float
    threshold: float | None
    action: str | None  # what crossing the threshold does ("hold", "block"); None when not known
    fired: bool  # the policy gave a reason for this category

    @property
    def pct(self) -> int:
        return _pct(self.score)

    @property
    def threshold_pct(self) -> int | None:
        return None if self.threshold is None else _pct(self.threshold)

    @property
    def over(self) -> bool:
        return self.threshold is not None and self.score >= self.threshold


def score_bars(scores: Any, reasons: Any, policy: Any = None) -> list[ScoreBar]:
    """Every numeric category score, highest first, with the threshold that applies to it.

    The threshold comes from the output's own reasons when the category fired; otherwise from
    ``policy`` (the rules the output was judged by, when the caller knows them: same name and version),
    preferring the hold threshold; otherwise there is none and the bar shows the score alone.
    """
    fired = {r.category: r for r in reason_views(reasons)}
    rules = getattr(policy, "thresholds", {}) or {}
    bars = []
    for category, raw in (scores or {}).items():
        if not isinstance(raw, int | float) or isinstance(raw, bool) or not math.isfinite(raw):
            continue
        reason = fired.get(category)
        threshold: float | None = None
        action: str | None = None
        if reason is not None:
            threshold, action = reason.threshold, reason.action
        elif category in rules:
            rule = rules[category]
            if rule.hold is not None:
                threshold, action = rule.hold, "hold"
            elif rule.block is not None:
                threshold, action = rule.block, "block"
        bars.append(ScoreBar(str(category), float(raw), threshold, action, reason is not None))
    return sorted(bars, key=lambda b: (-b.score, b.category))


def top_scores(scores: Any, n: int = 3) -> list[tuple[str, float]]:
    numeric = [
        (str(k), float(v))
        for k, v in (scores or {}).items()
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    ]
    return sorted(numeric, key=lambda kv: (-kv[1], kv[0]))[:n]


def parameter_items(parameters: Any) -> list[tuple[str, str]]:
    """The generation parameters as (name, value) text pairs, sorted by name."""
    if not isinstance(parameters, Mapping):
        return []
    items = []
    for key, value in sorted(parameters.items(), key=lambda kv: str(kv[0])):
        shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)
        items.append((str(key), shown))
    return items


def age(since: datetime | None, now: datetime) -> str:
    """A compact age: '45s', '12m', '3h 05m', '2d 4h'."""
    if since is None:
        return "-"
    seconds = max(0, int((now - since).total_seconds()))
    if seconds < 60:
        return f"{seconds}s"
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if hours < 1:
        return f"{minutes}m"
    if days < 1:
        return f"{hours}h {minutes % 60:02d}m"
    return f"{days}d {hours % 24}h"


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _pct(value: float) -> int:
    return max(0, min(100, round(value * 100)))


def known_identity_terms(configured: Any = None) -> dict[str, Mapping[str, str]]:
    """terms_version -> {term: substitute} for the identity-term lists this process can name: the
    moderator's configured list (``configured``, a ``moderation.identity.IdentityTerms``) and the shipped
    one. A check recorded under another list version shows its terms without substitutes."""
    from moderation.identity import IdentityTerms

    known: dict[str, Mapping[str, str]] = {}
    for terms in (IdentityTerms.builtin(), configured):
        version, mapping = getattr(terms, "version", None), getattr(terms, "terms", None)
        if isinstance(version, str) and isinstance(mapping, Mapping):
            known[version] = mapping
    return known


@dataclass(frozen=True)
class IdentityCheckView:
    """One identity-term check: the category's score as written and with identity terms neutralised."""

    category: str
    original_score: float
    neutral_score: float
    threshold: float
    substitutions: tuple[str, ...]  # "muslim → person", or "muslim replaced" when the list is unknown
    softened: bool  # the check turned the rule's block into this hold

    @property
    def outcome(self) -> str:
        if self.softened:
            return "block softened to hold"
        if self.neutral_score < self.threshold:
            return f"below the threshold {self.threshold:.2f} without them"
        return f"still at or over the threshold {self.threshold:.2f} without them"


def identity_check_views(
    checks: Any, terms_by_version: Mapping[str, Mapping[str, str]]
) -> list[IdentityCheckView]:
    """The stored ``identity_checks`` (the ``moderation.replay.record_decision`` shape); malformed entries
    are skipped (stored data is not trusted to be well-formed)."""
    views = []
    for c in checks or []:
        if not isinstance(c, Mapping) or not c.get("category"):
            continue
        known = terms_by_version.get(str(c.get("terms_version", "")), {})
        terms = [str(t) for t in c.get("substituted_terms") or [] if isinstance(t, str)]
        views.append(
            IdentityCheckView(
                category=str(c["category"]),
                original_score=_number(c.get("original_score")),
                neutral_score=_number(c.get("neutral_score")),
                threshold=_number(c.get("threshold")),
                substitutions=tuple(f"{t} → {known[t]}" if t in known else f"{t} replaced" for t in terms),
                softened=c.get("softened") is True,
            )
        )
    return views


@dataclass(frozen=True)
class ShadowView:
    """What a policy running in shadow would have done with this output (it never acted)."""

    policy: str
    version: str
    action: str
    reasons: list[ReasonView]


def shadow_views(shadow: Any) -> list[ShadowView]:
    return [
        ShadowView(
            policy=str(s.get("policy_name", "?")),
            version=str(s.get("policy_version", "")),
            action=str(s.get("action", "?")),
            reasons=reason_views(s.get("reasons")),
        )
        for s in shadow or []
        if isinstance(s, Mapping)
    ]


@dataclass(frozen=True)
class ReplayView:
    """A replay's outcome for the page (``gateway.pipeline.replay.ReplayReport``; it never holds the text)."""

    ticket: str
    identical: bool
    text_identical: bool
    differences: tuple[str, ...]
    notes: tuple[str, ...]
    seconds: float

    @classmethod
    def of(cls, report: Any, seconds: float) -> ReplayView:
        return cls(
            ticket=str(report.ticket),
            identical=bool(report.identical),
            text_identical=bool(report.text_identical),
            differences=tuple(str(d) for d in report.decision_differences),
            notes=tuple(str(n) for n in report.notes),
            seconds=seconds,
        )
