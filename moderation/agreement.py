"""Agreement between reviewers who judged the same outputs: per (policy, category), how often they agree
and how much more than chance. Pure functions on plain data; the gateway reads the verdicts from its
database (`gateway/review/report_data.py`) and the policy report shows the rows.

Labels are the verdicts as given: approve, edit, reject (nominal: an edit is as far from an approve as
a reject is). Measures, over the items with at least two verdicts:

* raw agreement: per item, the share of pairs of its verdicts that agree; the mean over items (for two
  verdicts per item, the share of items where both agree);
* Cohen's kappa (scikit-learn `cohen_kappa_score`) between each item's first and second verdict, in the
  order given: "first reviewer" and "second reviewer" stand for whoever came first and second, so it is
  the usual two-rater kappa only when the same two people review everything; later verdicts are left out;
* Krippendorff's alpha (the `krippendorff` package, nominal), over every verdict of every item with the
  reviewers as coders: it allows any number of verdicts per item and any reviewer missing any item,
  which is what a review queue produces (Fleiss' kappa needs the same number of raters on every item,
  so it is not reported).

Both coefficients are None when they are undefined: every verdict the same label (agreement cannot be
told apart from chance), or no item with two verdicts.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations

__all__ = ["ALL_CATEGORIES", "LABELS", "AgreementRow", "RatedItem", "agreement_rows", "measure"]

LABELS = ("approve", "edit", "reject")
ALL_CATEGORIES = "(all)"  # the row of a policy that counts each of its items once


@dataclass(frozen=True)
class RatedItem:
    """One reviewed output: its live policy, the categories that held it, and each reviewer's verdict in
    the order given (`(reviewer, label)`; a reviewer appears at most once)."""

    policy: str
    categories: tuple[str, ...]
    verdicts: tuple[tuple[str, str], ...]

    def __post_init__(self) -> None:
        reviewers = [r for r, _ in self.verdicts]
        if len(set(reviewers)) != len(reviewers):
            raise ValueError("a reviewer gives at most one verdict per item")
        for _, label in self.verdicts:
            if label not in LABELS:
                raise ValueError(f"verdict labels are {', '.join(LABELS)}, got {label!r}")


@dataclass(frozen=True)
class AgreementRow:
    policy: str
    category: str
    items: int  # items with at least two verdicts
    verdicts: int  # their verdicts
    raw_agreement: float | None
    cohen_kappa: float | None
    krippendorff_alpha: float | None


def _raw(items: Sequence[Sequence[str]]) -> float | None:
    shares = []
    for labels in items:
        pairs = list(combinations(labels, 2))
        shares.append(sum(a == b for a, b in pairs) / len(pairs))
    return sum(shares) / len(shares) if shares else None


def _cohen(items: Sequence[Sequence[str]]) -> float | None:
    first = [labels[0] for labels in items]
    second = [labels[1] for labels in items]
    if len(set(first) | set(second)) < 2:
        return None
    from sklearn.metrics import cohen_kappa_score  # ~1 s to import: only when there is something to measure

    return float(cohen_kappa_score(first, second, labels=list(LABELS)))


def _alpha(rated: Sequence[Sequence[tuple[str, str]]]) -> float | None:
    if len({label for verdicts in rated for _, label in verdicts}) < 2:
        return None
    import krippendorff
    import numpy as np

    reviewers = sorted({r for verdicts in rated for r, _ in verdicts})
    row = {r: i for i, r in enumerate(reviewers)}
    data = np.full((len(reviewers), len(rated)), np.nan)
    for column, verdicts in enumerate(rated):
        for reviewer, label in verdicts:
            data[row[reviewer], column] = LABELS.index(label)
    return float(
        krippendorff.alpha(
            reliability_data=data, value_domain=list(range(len(LABELS))), level_of_measurement="nominal"
        )
    )


def measure(policy: str, category: str, rated: Sequence[RatedItem]) -> AgreementRow:
    """The row of one group of items (those with fewer than two verdicts are ignored)."""
    usable = [r.verdicts for r in rated if len(r.verdicts) >= 2]
    labels = [[label for _, label in verdicts] for verdicts in usable]
    return AgreementRow(
        policy=policy,
        category=category,
        items=len(usable),
        verdicts=sum(len(v) for v in usable),
        raw_agreement=_raw(labels),
        cohen_kappa=_cohen(labels) if usable else None,
        krippendorff_alpha=_alpha(usable) if usable else None,
    )


def agreement_rows(rated: Iterable[RatedItem]) -> tuple[AgreementRow, ...]:
    """One row per (policy, category that held items with two or more verdicts), each policy's
    `ALL_CATEGORIES` row first; an item held by two categories counts in both of their rows."""
    groups: Mapping[tuple[str, str], list[RatedItem]] = defaultdict(list)
    for item in rated:
        if len(item.verdicts) < 2:
            continue
        groups[(item.policy, ALL_CATEGORIES)].append(item)
        for category in dict.fromkeys(item.categories):
            groups[(item.policy, category)].append(item)
    ordered = sorted(groups, key=lambda k: (k[0], k[1] != ALL_CATEGORIES, k[1]))
    return tuple(measure(policy, category, groups[(policy, category)]) for policy, category in ordered)
