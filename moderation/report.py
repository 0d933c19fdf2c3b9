"""The policy report: what reviewers' verdicts say about a policy's thresholds. Pure functions, plain data.

Input: one `ReviewedOutput` per output (its scores, which rules held it, the live policy, the reviewer's
verdict, and what shadow policies would have done). Output: per (policy, category) how many holds were
approved unchanged (false holds), edited or rejected; the score distributions of approved and rejected
outputs; a suggested hold threshold (see `suggest_hold_threshold` for the exact definition); and per
shadow policy what it would have released or held. The gateway reads the records from its database and
`moderation.report_render` turns the result into a table (CLI) or an SVG (web page).

Caveat, repeated in docs/moderation.md: reviewers only see what was held, so the verdicts say little
about the text the live policy released. QA labels of released outputs (`moderation.miss_rate.QaLabel`,
a uniform sample of what was released) fill that gap: where they exist they join the suggestion's
observations, each weighted by the inverse of its sampling rate, and the report carries the miss rate
(`moderation.miss_rate.miss_rates`).
"""

from __future__ import annotations

import enum
import math
import statistics
from bisect import bisect_right
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING

from moderation.agreement import AgreementRow, RatedItem, agreement_rows
from moderation.miss_rate import DEFAULT_CONFIDENCE, MissRate, QaLabel, miss_rates

if TYPE_CHECKING:
    from moderation.policy import Policy

__all__ = [
    "CategoryReport",
    "Distribution",
    "PolicyReport",
    "ReviewVerdict",
    "ReviewedOutput",
    "ShadowReport",
    "build_report",
    "histogram",
    "suggest_hold_threshold",
]

_EPSILON = 1e-12  # rates are compared as floats; a rate equal to the target counts as within it


class ReviewVerdict(enum.StrEnum):
    APPROVED = "approved"  # released unchanged: the hold was not needed (a false hold)
    EDITED = "edited"  # released after an edit
    REJECTED = "rejected"  # never released


UNREVIEWED = "unreviewed"  # the key for outputs without a verdict in ShadowReport counts
_SHADOW_OUTCOME = {"release": "release", "mask": "release", "hold": "hold", "block": "block"}


@dataclass(frozen=True)
class ReviewedOutput:
    """One output as the report needs it. `verdict` None = not reviewed (released or blocked by the live
    policy, or still pending): such outputs count only in the shadow summary. `held_by` names the
    categories whose rules held it (threshold categories, span categories, "review_all")."""

    category_scores: Mapping[str, float]
    held_by: tuple[str, ...]
    policy: str
    verdict: ReviewVerdict | str | None
    shadow_actions: Mapping[str, str] = field(default_factory=dict)  # policy -> release|mask|hold|block

    def __post_init__(self) -> None:
        if self.verdict is not None:
            object.__setattr__(self, "verdict", ReviewVerdict(self.verdict))
        object.__setattr__(self, "held_by", tuple(self.held_by))
        for name, action in self.shadow_actions.items():
            if action not in _SHADOW_OUTCOME:
                raise ValueError(f"shadow action for {name!r} must be one of {sorted(_SHADOW_OUTCOME)}")


@dataclass(frozen=True)
class Distribution:
    """Scores of one verdict in one category: count, mean, median (None when empty), histogram counts."""

    count: int
    mean: float | None
    median: float | None
    bins: tuple[int, ...]


@dataclass(frozen=True)
class CategoryReport:
    """One (policy, category) row. `held*` count the reviewed outputs this category's rule held; the
    distributions and the suggestion use every reviewed output of the policy that has a score in the
    category (`reviewed`), whatever held it: that is the only data there is on scores below the
    current threshold."""

    policy: str
    category: str
    held: int
    held_approved: int
    held_edited: int
    held_rejected: int
    reviewed: int
    approved: Distribution
    edited: Distribution
    rejected: Distribution
    current_hold: float | None = None
    current_block: float | None = None
    suggested_hold: float | None = None
    released_at_suggestion: int = 0  # reviewed outputs scoring below the suggestion
    rejected_at_suggestion: int = 0  # ... of which reviewers rejected (counted as bad)
    qa_labelled: int = 0  # QA-labelled released outputs with a score in the category (in the suggestion)
    qa_harmful: int = 0  # ... of which labelled harmful in this category

    def share(self, count: int) -> float | None:
        """`count` as a share of the held outputs (None when nothing was held)."""
        return count / self.held if self.held else None

    @property
    def false_hold_rate(self) -> float | None:
        """Share of this rule's holds that reviewers approved unchanged."""
        return self.share(self.held_approved)


@dataclass(frozen=True)
class ShadowReport:
    """What `shadow` would have done with the outputs of live policy `policy`: counts per outcome
    (release: release or mask; hold; block), each split by verdict (approved/edited/rejected/unreviewed).
    `would_release[rejected]` is what the shadow would have let out that a reviewer stopped."""

    policy: str
    shadow: str
    outputs: int
    would_release: Mapping[str, int]
    would_hold: Mapping[str, int]
    would_block: Mapping[str, int]


@dataclass(frozen=True)
class PolicyReport:
    outputs: int
    reviewed: int
    target_rate: float
    edges: tuple[float, ...]
    categories: tuple[CategoryReport, ...]
    shadows: tuple[ShadowReport, ...]
    edited_counts_as_rejected: bool = False
    # Agreement between reviewers on the items several reviewed (moderation/agreement.py).
    agreement: tuple[AgreementRow, ...] = ()
    miss_rates: tuple[MissRate, ...] = ()  # from the QA sample of released outputs
    qa_labelled: int = 0


def histogram(scores: Iterable[float], edges: Sequence[float]) -> tuple[int, ...]:
    """Counts per bin `[edges[i], edges[i+1])`; the last bin is closed, and scores outside are clamped
    into the first or last bin."""
    counts = [0] * (len(edges) - 1)
    for score in scores:
        counts[min(max(bisect_right(edges, score) - 1, 0), len(counts) - 1)] += 1
    return tuple(counts)


Observation = tuple[float, bool] | tuple[float, bool, float]


def suggest_hold_threshold(observations: Iterable[Observation], *, target_rate: float) -> float | None:
    """The highest hold threshold that keeps the rejected share of released outputs within target.

    `observations` are `(score, bad)` pairs of reviewed outputs (bad = rejected), or `(score, bad,
    weight)` triples: a weight is how many outputs the observation stands for (1 for a reviewed held
    output; 1/rate for a QA sample drawn at `rate`). A threshold `t` holds scores `>= t` (as
    `Thresholds` does) and releases scores `< t`. With sums of weights

        released(t) = Σw {score < t}        bad_released(t) = Σw {score < t and bad}
        rate(t)     = bad_released(t) / released(t)    (0 when released(t) = 0)

    the suggestion is the largest `t` among the observed scores and 1.0 with `rate(t) <= target_rate`;
    None without observations. Only those candidates matter: between two observed scores the released
    set does not change, and the highest `t` giving a released set is that set's upper score (a tie at
    `t` is held). The smallest candidate (the lowest score) releases nothing, so with data there is
    always a suggestion; all rejected gives that lowest score, all approved gives 1.0.

    Why this rate (bad among released) and the highest `t`: the operator's promise is about what goes
    out unreviewed ("at most 1% of automatically released text would have been rejected"), and the
    lowest `t` meeting any such target is degenerate (hold everything, release nothing); the highest
    is the least reviewer work that keeps the promise on the observed data.
    """
    if not 0.0 <= target_rate <= 1.0:
        raise ValueError(f"target_rate must be within [0, 1], got {target_rate!r}")
    points = sorted((float(o[0]), bool(o[1]), float(o[2]) if len(o) > 2 else 1.0) for o in observations)
    if not points:
        return None
    best: float | None = None
    released = bad = 0.0
    i = 0
    if not all(0.0 <= s <= 1.0 for s, _, _ in points):  # NaN fails this too
        raise ValueError("scores must be within [0, 1]")
    if not all(w > 0.0 and math.isfinite(w) for _, _, w in points):
        raise ValueError("weights must be positive and finite")
    candidates = sorted({s for s, _, _ in points} | {1.0})
    for t in candidates:
        while i < len(points) and points[i][0] < t:
            released += points[i][2]
            bad += points[i][2] if points[i][1] else 0.0
            i += 1
        if bad <= target_rate * released + _EPSILON * max(released, 1.0):
            best = t
    return best


def build_report(
    outputs: Iterable[ReviewedOutput],
    *,
    target_rate: float = 0.01,
    bins: int = 10,
    policies: Mapping[str, Policy] | None = None,
    edited_counts_as_rejected: bool = False,
    rated: Iterable[RatedItem] = (),
    qa_labels: Iterable[QaLabel] = (),
    qa_policies: Iterable[str] = (),
    confidence: float = DEFAULT_CONFIDENCE,
) -> PolicyReport:
    """Aggregate the outputs into a `PolicyReport`. `policies` (name -> Policy) fills in the current
    thresholds; `edited_counts_as_rejected` treats an edit as "should not have been released as is"
    when suggesting thresholds (by default only rejections count); `rated` (the reviewers' verdicts on
    items that several reviewed) gives the agreement rows.

    `qa_labels`: labelled QA samples of released outputs. They give the miss rates (with `qa_policies`,
    the QA-sampled policies, shown with n = 0 when unlabelled) and join each (policy, category)'s
    suggestion as `(score, harmful in this category, 1/sample_rate)`: the released side of the
    threshold, which held verdicts cannot see, measured on an unbiased sample and weighted back to the
    number of released outputs it stands for."""
    if bins < 1:
        raise ValueError("bins must be >= 1")
    edges = tuple(i / bins for i in range(bins + 1))
    items = list(outputs)
    reviewed = [o for o in items if o.verdict is not None]
    bad = {ReviewVerdict.REJECTED} | ({ReviewVerdict.EDITED} if edited_counts_as_rejected else set())

    labels = list(qa_labels)
    keys: dict[tuple[str, str], None] = {}
    for o in reviewed:
        for category in (*o.held_by, *o.category_scores):
            keys.setdefault((o.policy, category), None)
    for label in labels:
        for category in label.category_scores:
            keys.setdefault((label.policy, category), None)
    rows = []
    for policy_name, category in sorted(keys):
        mine = [o for o in reviewed if o.policy == policy_name]
        held = Counter(o.verdict for o in mine if category in o.held_by)
        scored = [
            (float(o.category_scores[category]), o.verdict) for o in mine if category in o.category_scores
        ]
        rule = (
            policies[policy_name].thresholds.get(category) if policies and policy_name in policies else None
        )
        qa = [
            (float(q.category_scores[category]), category in q.harmful_categories, 1.0 / q.sample_rate)
            for q in labels
            if q.policy == policy_name and category in q.category_scores
        ]
        observations: list[Observation] = [(s, v in bad) for s, v in scored]
        suggestion = suggest_hold_threshold([*observations, *qa], target_rate=target_rate)
        below = [v for s, v in scored if suggestion is not None and s < suggestion]
        rows.append(
            CategoryReport(
                policy=policy_name,
                category=category,
                held=sum(held.values()),
                held_approved=held[ReviewVerdict.APPROVED],
                held_edited=held[ReviewVerdict.EDITED],
                held_rejected=held[ReviewVerdict.REJECTED],
                reviewed=len(scored),
                approved=_distribution([s for s, v in scored if v is ReviewVerdict.APPROVED], edges),
                edited=_distribution([s for s, v in scored if v is ReviewVerdict.EDITED], edges),
                rejected=_distribution([s for s, v in scored if v is ReviewVerdict.REJECTED], edges),
                current_hold=rule.hold if rule else None,
                current_block=rule.block if rule else None,
                suggested_hold=suggestion,
                released_at_suggestion=len(below),
                rejected_at_suggestion=sum(v in bad for v in below),
                qa_labelled=len(qa),
                qa_harmful=sum(harmful for _, harmful, _ in qa),
            )
        )
    return PolicyReport(
        outputs=len(items),
        reviewed=len(reviewed),
        target_rate=target_rate,
        edges=edges,
        categories=tuple(rows),
        shadows=_shadow_reports(items),
        edited_counts_as_rejected=edited_counts_as_rejected,
        agreement=agreement_rows(rated),
        miss_rates=miss_rates(labels, policies=qa_policies, confidence=confidence),
        qa_labelled=len(labels),
    )


def _distribution(scores: list[float], edges: Sequence[float]) -> Distribution:
    return Distribution(
        count=len(scores),
        mean=statistics.fmean(scores) if scores else None,
        median=statistics.median(scores) if scores else None,
        bins=histogram(scores, edges),
    )


def _shadow_reports(items: list[ReviewedOutput]) -> tuple[ShadowReport, ...]:
    counts: dict[tuple[str, str], dict[str, Counter[str]]] = defaultdict(
        lambda: {"release": Counter(), "hold": Counter(), "block": Counter()}
    )
    for o in items:
        verdict = str(o.verdict) if o.verdict is not None else UNREVIEWED
        for shadow, action in o.shadow_actions.items():
            counts[(o.policy, shadow)][_SHADOW_OUTCOME[action]][verdict] += 1
    verdicts = [*(v.value for v in ReviewVerdict), UNREVIEWED]

    def frozen(counter: Counter[str]) -> Mapping[str, int]:
        return MappingProxyType({v: counter[v] for v in verdicts})

    return tuple(
        ShadowReport(
            policy=live,
            shadow=shadow,
            outputs=sum(sum(c.values()) for c in by_outcome.values()),
            would_release=frozen(by_outcome["release"]),
            would_hold=frozen(by_outcome["hold"]),
            would_block=frozen(by_outcome["block"]),
        )
        for (live, shadow), by_outcome in sorted(counts.items())
    )
