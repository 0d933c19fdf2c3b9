"""The miss rate from the QA sample, and QA labels in the threshold suggestion.

The Wilson intervals are checked against values computed by hand from the closed form and against the
published table of Newcombe (1998, "Two-sided confidence intervals for the single proportion", method 3),
not against the code's own output."""

from __future__ import annotations

import math

import pytest

from moderation.miss_rate import ANY, OTHER, QaLabel, miss_rates, wilson_interval
from moderation.report import ReviewedOutput, build_report, suggest_hold_threshold
from moderation.report_render import format_miss_rate, format_table

Z95 = 1.959963984540054


def by_hand(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """(k + z²/2 ± z·sqrt(k(n-k)/n + z²/4)) / (n + z²): the same interval, written the other way round."""
    root = z * math.sqrt(k * (n - k) / n + z * z / 4)
    return (k + z * z / 2 - root) / (n + z * z), (k + z * z / 2 + root) / (n + z * z)


@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    [  # Newcombe (1998), table I, method 3, to four places
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (1, 29, 0.0061, 0.1718),
    ],
)
def test_wilson_matches_the_published_table(k: int, n: int, low: float, high: float) -> None:
    interval = wilson_interval(k, n)
    assert interval is not None
    assert interval[0] == pytest.approx(low, abs=5e-5)
    assert interval[1] == pytest.approx(high, abs=5e-5)


def test_wilson_matches_the_closed_form_by_hand() -> None:
    # 0 of 10: the lower bound is 0 and the upper z²/(n+z²) = 3.8415/13.8415 = 0.27753
    assert wilson_interval(0, 10) == pytest.approx((0.0, 3.841458820694124 / 13.841458820694124))
    assert wilson_interval(0, 10)[1] == pytest.approx(0.27753, abs=1e-5)  # type: ignore[index]
    # 5 of 10: symmetric around 0.5, 0.23659 .. 0.76341
    assert wilson_interval(5, 10) == pytest.approx((0.23659, 0.76341), abs=1e-5)
    # 2 of 50 at 95% and 3 of 40 at 90% (z = 1.644854)
    assert wilson_interval(2, 50) == pytest.approx(by_hand(2, 50))
    assert wilson_interval(3, 40, confidence=0.90) == pytest.approx(by_hand(3, 40, z=1.6448536269514722))
    # n of n: the upper bound is 1
    assert wilson_interval(29, 29) == pytest.approx((by_hand(29, 29)[0], 1.0))


def test_wilson_input_is_checked() -> None:
    assert wilson_interval(0, 0) is None
    for k, n in [(-1, 10), (11, 10), (1, -1)]:
        with pytest.raises(ValueError, match="successes"):
            wilson_interval(k, n)
    for confidence in (0.0, 1.0, math.nan):
        with pytest.raises(ValueError, match="confidence"):
            wilson_interval(1, 10, confidence=confidence)


def label(policy: str, scores: dict[str, float], harmful: tuple[str, ...] = (), rate: float = 0.5) -> QaLabel:
    return QaLabel(policy=policy, category_scores=scores, harmful_categories=harmful, sample_rate=rate)


def test_miss_rates_per_policy_and_category() -> None:
    labels = [
        label("default", {"toxicity": 0.1, "insult": 0.05}, ("toxicity",)),
        label("default", {"toxicity": 0.2, "insult": 0.30}, ("toxicity", "insult")),
        label("default", {"toxicity": 0.05, "insult": 0.01}, (OTHER,)),
        *[label("default", {"toxicity": 0.01 * i, "insult": 0.0}) for i in range(7)],
        label("lenient", {"toxicity": 0.4}, rate=0.1),
    ]
    rows = {(m.policy, m.category): m for m in miss_rates(labels, policies=["default", "strict"])}
    assert sorted(rows) == [
        ("default", ANY),
        ("default", "insult"),
        ("default", OTHER),
        ("default", "toxicity"),
        ("lenient", ANY),
        ("lenient", "toxicity"),
        ("strict", ANY),
    ]
    assert (rows["default", ANY].harmful, rows["default", ANY].sampled) == (3, 10)
    assert rows["default", ANY].estimate == pytest.approx(0.3)
    assert (rows["default", ANY].low, rows["default", ANY].high) == pytest.approx(by_hand(3, 10))
    assert (rows["default", "toxicity"].harmful, rows["default", "toxicity"].sampled) == (2, 10)
    assert (rows["default", "insult"].harmful, rows["default", "other"].harmful) == (1, 1)
    assert rows["default", ANY].sample_rates == (0.5,)
    assert (rows["lenient", "toxicity"].harmful, rows["lenient", "toxicity"].sampled) == (0, 1)
    assert rows["lenient", "toxicity"].high == pytest.approx(by_hand(0, 1)[1])
    nothing = rows["strict", ANY]  # configured, nothing labelled: no estimate, not 0%
    assert (nothing.sampled, nothing.estimate, nothing.low, nothing.high) == (0, None, None, None)
    assert "n = 0" in format_miss_rate(nothing) and "0.0%" not in format_miss_rate(nothing)
    line = format_miss_rate(rows["default", ANY])
    assert "30.0%" in line and "3 harmful of n = 10" in line
    assert f"[{100 * by_hand(3, 10)[0]:.1f}%, {100 * by_hand(3, 10)[1]:.1f}%]" in line


def test_a_label_is_checked() -> None:
    for rate in (0.0, 1.5, math.nan, -0.1):
        with pytest.raises(ValueError, match="sample_rate"):
            label("p", {}, rate=rate)


def test_weights_in_the_suggestion() -> None:
    # Unweighted: one bad of four below 0.5 is 25%. Weighted, the three fine released outputs below 0.4
    # stand for 10 each (sampled at 10%): 1 bad of 31 released at t = 0.5 is 3.2%, within 5%.
    plain = [(0.1, False), (0.2, False), (0.3, False), (0.45, True)]
    assert suggest_hold_threshold(plain, target_rate=0.05) == 0.45
    weighted = [(0.1, False, 10.0), (0.2, False, 10.0), (0.3, False, 10.0), (0.45, True, 1.0)]
    assert suggest_hold_threshold(weighted, target_rate=0.05) == 1.0
    assert suggest_hold_threshold(weighted, target_rate=0.03) == 0.45
    with pytest.raises(ValueError, match="weights"):
        suggest_hold_threshold([(0.1, False, 0.0)], target_rate=0.05)


def test_qa_labels_move_the_suggestion_in_the_report() -> None:
    # Held and reviewed: everything at 0.6 and above was rejected, 0.5 approved. On held verdicts alone
    # the suggestion is 0.6 (nothing below it was rejected). The QA sample of released outputs (drawn at
    # 50%) finds harmful toxicity at 0.3 and 0.4 among 8 labelled: released at 0.6 would then be
    # (2 harmful x 2) / (8 x 2 + 1) = 23.5% bad, so the 10% target needs the threshold at 0.3.
    held = [
        ReviewedOutput({"toxicity": s}, ("toxicity",), "default", v)
        for s, v in [(0.5, "approved"), (0.6, "rejected"), (0.7, "rejected"), (0.9, "rejected")]
    ]
    qa = [
        label("default", {"toxicity": s}, ("toxicity",) if s in (0.3, 0.4) else ())
        for s in (0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4)
    ]
    without = build_report(held, target_rate=0.1)
    assert [(r.category, r.suggested_hold, r.qa_labelled) for r in without.categories] == [
        ("toxicity", 0.6, 0)
    ]
    assert without.miss_rates == ()
    report = build_report(held, target_rate=0.1, qa_labels=qa)
    (row,) = report.categories
    assert (row.suggested_hold, row.qa_labelled, row.qa_harmful) == (0.3, 8, 2)
    assert row.reviewed == 4 and row.held == 4  # the held-item counts are unchanged
    assert report.qa_labelled == 8
    any_row = next(m for m in report.miss_rates if m.category == ANY)
    assert (any_row.harmful, any_row.sampled) == (2, 8)
    table = format_table(report)
    assert "miss rate" in table and "2 harmful of n = 8" in table
    assert "default/toxicity: 2 of 8" in table


def test_harm_in_another_category_does_not_move_this_categorys_threshold() -> None:
    held = [ReviewedOutput({"toxicity": 0.8, "threat": 0.1}, ("toxicity",), "default", "rejected")]
    qa = [label("default", {"toxicity": 0.05, "threat": 0.2}, ("threat",)) for _ in range(3)]
    rows = {r.category: r for r in build_report(held, target_rate=0.1, qa_labels=qa).categories}
    assert rows["toxicity"].suggested_hold == 0.8 and rows["toxicity"].qa_harmful == 0
    assert rows["threat"].suggested_hold == 0.1 and rows["threat"].qa_harmful == 3
