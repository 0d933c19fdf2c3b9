"""The miss rate: the share of *released* outputs that reviewers judge harmful, from the QA sample.

Held outputs cannot answer "how much harmful text do we let through?": reviewers see them because the
policy stopped them. The QA sample is a uniform random share of the released (and masked) outputs,
labelled harmful or fine by reviewers after release, so its harmful share estimates the policy's miss
rate without that selection bias. Pure functions over plain data; the gateway reads the labels.

The interval is Wilson's score interval (closed form, no dependency): unlike the normal approximation
it stays inside [0, 1] and is not degenerate at 0 of n, which is the common case for a working policy.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from statistics import NormalDist

__all__ = ["ANY", "OTHER", "MissRate", "QaLabel", "miss_rates", "wilson_interval"]

ANY = "any"  # the row of a policy that counts an output harmful in whatever category
OTHER = "other"  # a harm no scorer category covers: counts in ANY, in no score category
DEFAULT_CONFIDENCE = 0.95


@dataclass(frozen=True)
class QaLabel:
    """One labelled QA sample: a released output of `policy`, its recorded scores, the reviewer's label
    (`harmful_categories` empty = fine) and the sampling rate it was drawn at (its weight is 1/rate)."""

    policy: str
    category_scores: Mapping[str, float]
    harmful_categories: tuple[str, ...]
    sample_rate: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "harmful_categories", tuple(self.harmful_categories))
        if not 0.0 < self.sample_rate <= 1.0:  # NaN fails this too
            raise ValueError(f"sample_rate must be within (0, 1], got {self.sample_rate!r}")

    @property
    def harmful(self) -> bool:
        return bool(self.harmful_categories)


@dataclass(frozen=True)
class MissRate:
    """`harmful` of `sampled` labelled released outputs of `policy` were judged harmful in `category`
    (`ANY`: in any category). `estimate` is harmful/sampled and `low`..`high` its Wilson interval at
    `confidence`; all three are None when nothing was labelled (n = 0: no estimate, not 0%)."""

    policy: str
    category: str
    harmful: int
    sampled: int
    estimate: float | None
    low: float | None
    high: float | None
    confidence: float = DEFAULT_CONFIDENCE
    sample_rates: tuple[float, ...] = field(default=())  # the distinct rates the sample was drawn at


def wilson_interval(
    successes: int, trials: int, *, confidence: float = DEFAULT_CONFIDENCE
) -> tuple[float, float] | None:
    """Wilson's score interval for a binomial proportion; None when `trials` is 0.

    p = k/n,  z = the (1 + confidence)/2 quantile of the standard normal
    centre = (p + z²/2n) / (1 + z²/n)
    half   = z / (1 + z²/n) * sqrt(p(1-p)/n + z²/4n²)
    [centre - half, centre + half], clamped to [0, 1] (only rounding can cross them)
    """
    if trials < 0 or not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes <= trials, got {successes} of {trials}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be within (0, 1), got {confidence!r}")
    if trials == 0:
        return None
    z = NormalDist().inv_cdf((1.0 + confidence) / 2.0)
    n, p = float(trials), successes / trials
    denominator = 1.0 + z * z / n
    centre = (p + z * z / (2.0 * n)) / denominator
    half = z / denominator * math.sqrt(p * (1.0 - p) / n + z * z / (4.0 * n * n))
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return low, high


def miss_rates(
    labels: Iterable[QaLabel],
    *,
    policies: Iterable[str] = (),
    confidence: float = DEFAULT_CONFIDENCE,
) -> tuple[MissRate, ...]:
    """Per policy: one `ANY` row, then one row per category that a label named or a labelled output has
    a score in. Every labelled sample of the policy is in each row's denominator (a released output not
    harmful in a category is a correct release for it). `policies` (those QA-sampled by configuration)
    get an `ANY` row with n = 0 when nothing of theirs was labelled, so a silent sample shows as such.

    The estimate is the plain share of the labelled sample: exact when one rate was in force for the
    window; `sample_rates` lists the rates, so a reader sees when a rate change mixed periods."""
    by_policy: dict[str, list[QaLabel]] = defaultdict(list)
    for label in labels:
        by_policy[label.policy].append(label)
    for name in policies:
        by_policy.setdefault(name, [])
    rows: list[MissRate] = []
    for policy in sorted(by_policy):
        mine = by_policy[policy]
        rates = tuple(sorted({label.sample_rate for label in mine}))
        categories = sorted(
            {c for label in mine for c in (*label.harmful_categories, *label.category_scores)} - {ANY}
        )
        for category in (ANY, *categories):
            harmful = sum(
                label.harmful if category == ANY else category in label.harmful_categories for label in mine
            )
            interval = wilson_interval(harmful, len(mine), confidence=confidence)
            rows.append(
                MissRate(
                    policy=policy,
                    category=category,
                    harmful=harmful,
                    sampled=len(mine),
                    estimate=harmful / len(mine) if mine else None,
                    low=interval[0] if interval else None,
                    high=interval[1] if interval else None,
                    confidence=confidence,
                    sample_rates=rates,
                )
            )
    return tuple(rows)
