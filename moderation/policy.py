"""Policies are data; `evaluate` is the one function that applies a policy and explains its decision.

A policy maps score categories to `hold` / `block` thresholds, span categories (e.g. "profanity") to an
action, and may send every output to review. The decision is the most severe action any rule triggers.
The numbers in the presets are justified in docs/moderation.md.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from moderation.identity import NeutralScores
from moderation.types import Action, IdentityCheck, Reason, Span

__all__ = [
    "DEFAULT",
    "NON_FINITE_SCORE",
    "PERMISSIVE",
    "PRESETS",
    "PROMPT_SCREENING_ACTIONS",
    "STRICT",
    "Policy",
    "Thresholds",
    "Verdict",
    "evaluate",
]

EXCERPT_CHARS = 280
MAX_SPAN_REASONS = 20
# The reason category of a NaN or infinite score: the scorer is broken for this text, so a human decides.
NON_FINITE_SCORE = "non_finite_score"
# What a category named in `Policy.prompt_screening` does to a prompt it fires on
# (moderation.prompt_screening).
PROMPT_SCREENING_ACTIONS: frozenset[Action] = frozenset({Action.HOLD, Action.BLOCK})


@dataclass(frozen=True)
class Thresholds:
    """Scores at or above `hold` go to a reviewer; at or above `block` are refused. None = never."""

    hold: float | None = None
    block: float | None = None

    def __post_init__(self) -> None:
        for label, value in (("hold", self.hold), ("block", self.block)):
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"{label} threshold must be within [0, 1], got {value!r}")
        if self.hold is not None and self.block is not None and self.hold > self.block:
            raise ValueError(f"hold threshold {self.hold} is above block threshold {self.block}")

    def action_for(self, score: float) -> tuple[Action, float] | None:
        """The action this score triggers and the threshold it crossed, or None."""
        if self.block is not None and score >= self.block:
            return Action.BLOCK, self.block
        if self.hold is not None and score >= self.hold:
            return Action.HOLD, self.hold
        return None


@dataclass(frozen=True)
class Policy:
    """A named set of rules. Immutable, and identified by `version`, a hash of its rules."""

    name: str
    thresholds: Mapping[str, Thresholds] = field(default_factory=dict)
    span_actions: Mapping[str, Action] = field(default_factory=lambda: {"profanity": Action.MASK})
    # Spans of a category the policy does not name (a new scorer): a human decides.
    unknown_span_action: Action = Action.HOLD
    review_all: bool = False
    description: str = ""
    # Categories screened on the prompt before generation, and what firing does (see
    # moderation.prompt_screening); a category not named is not screened.
    prompt_screening: Mapping[str, Action] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for category, action in self.prompt_screening.items():
            if Action(action) not in PROMPT_SCREENING_ACTIONS:
                allowed = " or ".join(sorted(a.name.lower() for a in PROMPT_SCREENING_ACTIONS))
                raise ValueError(
                    f"prompt screening of {category!r} must be {allowed}, not {Action(action).name.lower()}"
                )
        object.__setattr__(
            self,
            "prompt_screening",
            MappingProxyType({k: Action(v) for k, v in self.prompt_screening.items()}),
        )
        for category, action in {**self.span_actions, "(unknown)": self.unknown_span_action}.items():
            if Action(action) is Action.RELEASE:
                raise ValueError(f"span action for {category!r} must be mask, hold or block, not release")
        object.__setattr__(self, "thresholds", MappingProxyType(dict(self.thresholds)))
        object.__setattr__(
            self, "span_actions", MappingProxyType({k: Action(v) for k, v in self.span_actions.items()})
        )
        object.__setattr__(self, "unknown_span_action", Action(self.unknown_span_action))

    def canonical(self) -> dict[str, object]:
        """The rules as plain sorted data (name and description excluded): what `version` hashes.

        `prompt_screening` is included only when it screens something, so that a policy without it keeps
        the version its recorded decisions carry."""
        rules: dict[str, object] = {
            "thresholds": {c: {"hold": t.hold, "block": t.block} for c, t in sorted(self.thresholds.items())},
            "span_actions": {c: a.name.lower() for c, a in sorted(self.span_actions.items())},
            "unknown_span_action": self.unknown_span_action.name.lower(),
            "review_all": self.review_all,
        }
        if self.prompt_screening:
            rules["prompt_screening"] = {c: a.name.lower() for c, a in sorted(self.prompt_screening.items())}
        return rules

    @classmethod
    def from_canonical(cls, name: str, rules: Mapping[str, object], *, description: str = "") -> Policy:
        """The policy whose `canonical()` is `rules`: how a decision recorded under an older version of a
        policy is replayed under exactly that version (the gateway keeps every served version's rules).
        Raises ValueError for rules that are not a `canonical()` document."""
        try:
            thresholds = rules["thresholds"]
            span_actions = rules["span_actions"]
            screening = rules.get("prompt_screening", {})  # present only when the policy screens prompts
            if not (
                isinstance(thresholds, Mapping)
                and isinstance(span_actions, Mapping)
                and isinstance(screening, Mapping)
            ):
                raise TypeError("thresholds, span_actions and prompt_screening must be tables")
            return cls(
                name=name,
                thresholds={
                    str(c): Thresholds(hold=t["hold"], block=t["block"]) for c, t in thresholds.items()
                },
                span_actions={str(c): Action[str(a).upper()] for c, a in span_actions.items()},
                unknown_span_action=Action[str(rules["unknown_span_action"]).upper()],
                review_all=bool(rules["review_all"]),
                prompt_screening={str(c): Action[str(a).upper()] for c, a in screening.items()},
                description=description,
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not the canonical rules of a policy: {exc}") from None

    @property
    def version(self) -> str:
        """Short hash of the rules, stored with every decision so it can be traced to exact settings."""
        blob = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Verdict:
    """What `evaluate` decided for one text: the action, why, which spans to mask if it masks, and the
    identity-term checks its rules triggered."""

    action: Action
    reasons: tuple[Reason, ...]
    mask_spans: tuple[Span, ...]
    identity_checks: tuple[IdentityCheck, ...] = ()


def evaluate(
    policy: Policy,
    *,
    scores: Mapping[str, float],
    spans: Sequence[Span],
    text: str,
    score_sources: Mapping[str, str] | None = None,
    neutral: NeutralScores | None = None,
) -> Verdict:
    """Apply `policy` to one text's merged scores and spans.

    The action is the most severe one triggered; reasons are sorted most severe first. `score_sources`
    names the scorer behind each category (for the reasons).

    `neutral` carries the scores of the text with identity terms replaced (see `moderation.identity`).
    A threshold rule that fires on a category `neutral` has a score for gets an `IdentityCheck`; when the
    rule blocked and the neutral score is below the block threshold, the rule's reason becomes a HOLD and
    a reason with category "identity_check" (score = the neutral score, threshold = the one that fired)
    says why. The check can only turn a block into a hold, never release.

    A NaN or infinite score, in any category (named by the policy or not), holds the text with a
    `NON_FINITE_SCORE` reason naming the category and the scorer. Why: every comparison with NaN is
    false, so `NaN >= threshold` would release whatever a broken scorer saw; and an infinity is no
    evidence either way, so it neither blocks nor releases on its own.
    """
    sources = score_sources or {}
    reasons: list[Reason] = []
    checks: list[IdentityCheck] = []
    for category, value in scores.items():
        if not math.isfinite(value):
            reasons.append(_non_finite_reason(category, value, sources.get(category, "")))
    for category, rule in policy.thresholds.items():
        if category not in scores or not math.isfinite(scores[category]):
            continue
        hit = rule.action_for(scores[category])
        if hit is not None:
            action, threshold = hit
            check = None
            if neutral is not None and category in neutral.scores:
                check = _identity_check(category, float(scores[category]), threshold, action, neutral)
                checks.append(check)
                if check.softened:
                    action = Action.HOLD
            reasons.append(
                Reason(
                    category=category,
                    score=float(scores[category]),
                    threshold=threshold,
                    action=action,
                    excerpt=_excerpt(text),
                    scorer=sources.get(category, ""),
                )
            )
            if check is not None and check.softened:
                reasons.append(_identity_reason(check, sources.get(category, "")))
    mask_spans: list[Span] = []
    span_reasons = 0
    for span in sorted(spans, key=lambda s: (s.start, s.end)):
        action = policy.span_actions.get(span.category, policy.unknown_span_action)
        if action is Action.MASK:
            mask_spans.append(span)
        if span_reasons < MAX_SPAN_REASONS:
            span_reasons += 1
            reasons.append(
                Reason(
                    category=span.category,
                    score=1.0,
                    threshold=1.0,
                    action=action,
                    excerpt=text[span.start : span.end],
                    scorer=span.scorer,
                )
            )
    decided = max((r.action for r in reasons), default=Action.RELEASE)
    if policy.review_all and decided < Action.HOLD:
        decided = Action.HOLD
        reasons.append(Reason("review_all", 1.0, 0.0, Action.HOLD, "", "policy"))
    reasons.sort(key=lambda r: -r.action)
    return Verdict(
        action=decided, reasons=tuple(reasons), mask_spans=tuple(mask_spans), identity_checks=tuple(checks)
    )


def _non_finite_reason(category: str, value: float, scorer: str) -> Reason:
    """Score and threshold are placeholders (1.0 >= 0.0, like `review_all`): reasons are stored as JSON,
    which has no NaN. The note names what was wrong for the reviewer."""
    note = f"{scorer or 'a scorer'} gave {category} = {value!r}: not a usable score, held for a human"
    return Reason(NON_FINITE_SCORE, 1.0, 0.0, Action.HOLD, note, scorer)


def _identity_check(
    category: str, score: float, threshold: float, action: Action, neutral: NeutralScores
) -> IdentityCheck:
    neutral_score = float(neutral.scores[category])
    return IdentityCheck(
        category=category,
        original_score=score,
        neutral_score=neutral_score,
        threshold=threshold,
        substituted_terms=neutral.terms,
        # A NaN neutral score compares false, so it never softens; an infinite one is not trusted either.
        softened=action is Action.BLOCK and math.isfinite(neutral_score) and neutral_score < threshold,
        terms_version=neutral.terms_version,
    )


def _identity_reason(check: IdentityCheck, scorer: str) -> Reason:
    note = (
        f"{check.category} {check.original_score:.2f} as written, {check.neutral_score:.2f} with "
        f"{', '.join(check.substituted_terms)} replaced: held for a human instead of blocked"
    )
    return Reason("identity_check", check.neutral_score, check.threshold, Action.HOLD, note, scorer)


def _excerpt(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= EXCERPT_CHARS else text[: EXCERPT_CHARS - 1] + "\u2026"


def _t(hold: float | None = None, block: float | None = None) -> Thresholds:
    return Thresholds(hold=hold, block=block)


DEFAULT = Policy(
    name="default",
    description="Mask listed profanity; hold likely toxicity for review; block severe toxicity, threats and "
    "identity attacks when the model is confident.",
    thresholds={
        "toxicity": _t(hold=0.80),
        "severe_toxicity": _t(hold=0.30, block=0.60),
        "obscene": _t(hold=0.90),
        "threat": _t(hold=0.50, block=0.80),
        "insult": _t(hold=0.80),
        "identity_attack": _t(hold=0.50, block=0.80),
        "sexual_explicit": _t(hold=0.70, block=0.95),
        "profanity_ml": _t(hold=0.90),
    },
    span_actions={"profanity": Action.MASK},
)

STRICT = Policy(
    name="strict",
    description="Every output is held for a human; lower thresholds; listed profanity is held, not masked.",
    thresholds={
        "toxicity": _t(hold=0.50, block=0.90),
        "severe_toxicity": _t(hold=0.15, block=0.40),
        "obscene": _t(hold=0.60),
        "threat": _t(hold=0.30, block=0.60),
        "insult": _t(hold=0.50),
        "identity_attack": _t(hold=0.30, block=0.60),
        "sexual_explicit": _t(hold=0.40, block=0.80),
        "profanity_ml": _t(hold=0.60),
    },
    span_actions={"profanity": Action.HOLD},
    review_all=True,
)

PERMISSIVE = Policy(
    name="permissive",
    description="Mask listed profanity; hold or block only what is clearly severe, threatening or hateful.",
    thresholds={
        "severe_toxicity": _t(hold=0.60, block=0.80),
        "threat": _t(hold=0.70, block=0.90),
        "identity_attack": _t(hold=0.70, block=0.90),
        "sexual_explicit": _t(hold=0.90, block=0.98),
    },
    span_actions={"profanity": Action.MASK},
)

PRESETS: Mapping[str, Policy] = MappingProxyType({p.name: p for p in (DEFAULT, STRICT, PERMISSIVE)})


def categories_to_check(
    policies: Sequence[Policy], scores: Mapping[str, float], categories: Iterable[str]
) -> list[str]:
    """The checked categories whose threshold rule holds or blocks under any of `policies` (the live one
    and the shadows share one re-scoring). Only these are re-scored."""
    wanted = []
    for category in categories:
        if category not in scores:
            continue
        for policy in policies:
            rule = policy.thresholds.get(category)
            if rule is not None and rule.action_for(scores[category]) is not None:
                wanted.append(category)
                break
    return wanted
