"""Agreement between reviewers, checked against values computed by hand (worked out in the comments)."""

from __future__ import annotations

import pytest

from moderation.agreement import ALL_CATEGORIES, RatedItem, agreement_rows, measure
from moderation.report import ReviewedOutput, build_report
from moderation.report_render import format_table

A, E, R = "approve", "edit", "reject"


def item(*labels: str, categories: tuple[str, ...] = ("insult",), policy: str = "default") -> RatedItem:
    return RatedItem(policy, categories, tuple((f"rev{i}", label) for i, label in enumerate(labels)))


def test_two_reviewers_per_item() -> None:
    # Pairs AA, AA, RR, AR, RR. Raw agreement: 4 of 5 items = 0.8.
    # Cohen: first A,A,R,A,R (A 3/5), second A,A,R,R,R (A 2/5); p_e = .6*.4 + .4*.6 = .48;
    #        kappa = (.8 - .48) / (1 - .48) = .32 / .52 = 0.615384...
    # Krippendorff (nominal): coincidences o_AA = 4, o_RR = 4, o_AR = o_RA = 1; n_A = n_R = 5, n = 10;
    #        D_o = 2/10, D_e = (5*5 + 5*5) / (10*9) = 50/90; alpha = 1 - .2 / (5/9) = 0.64.
    row = measure("default", "insult", [item(A, A), item(A, A), item(R, R), item(A, R), item(R, R)])
    assert (row.items, row.verdicts) == (5, 10)
    assert row.raw_agreement == pytest.approx(0.8)
    assert row.cohen_kappa == pytest.approx(0.32 / 0.52)
    assert row.krippendorff_alpha == pytest.approx(0.64)


def test_three_verdicts_and_a_missing_reviewer() -> None:
    # Item 1: rev0 A, rev1 A, rev2 R; item 2: rev0 R, rev2 R (rev1 did not review it).
    # Raw: item 1 has pairs AA, AR, AR (1/3 agree), item 2 RR (1): mean (1/3 + 1) / 2 = 2/3.
    # Cohen on first vs second verdicts: (A, A) and (R, R): p_o = 1, p_e = .5*.5 + .5*.5 = .5; kappa = 1.
    # Krippendorff: item 1 (m = 3, weight 1/2): o_AA = 1, o_AR = o_RA = 1; item 2: o_RR = 2;
    #   n_A = 2, n_R = 3, n = 5; D_o = 2/5, D_e = 2*2*3 / (5*4) = .6; alpha = 1 - .4/.6 = 1/3.
    rated = [
        RatedItem("default", ("threat",), (("rev0", A), ("rev1", A), ("rev2", R))),
        RatedItem("default", ("threat",), (("rev0", R), ("rev2", R))),
    ]
    row = measure("default", "threat", rated)
    assert (row.items, row.verdicts) == (2, 5)
    assert row.raw_agreement == pytest.approx(2 / 3)
    assert row.cohen_kappa == pytest.approx(1.0)
    assert row.krippendorff_alpha == pytest.approx(1 / 3)


def test_an_edit_is_its_own_label() -> None:
    # (A, E) and (E, E): raw 1/2. Cohen: first A,E, second E,E: p_o = .5, p_e = .5*0 + .5*1 = .5 -> 0.
    # Krippendorff: o_AE = o_EA = 1, o_EE = 2; n_A = 1, n_E = 3, n = 4; D_o = 2/4, D_e = 2*1*3/(4*3) = .5
    #   -> alpha = 0.
    row = measure("default", "insult", [item(A, E), item(E, E)])
    assert row.raw_agreement == pytest.approx(0.5)
    assert row.cohen_kappa == pytest.approx(0.0)
    assert row.krippendorff_alpha == pytest.approx(0.0)


def test_undefined_when_every_verdict_is_the_same() -> None:
    row = measure("default", "insult", [item(A, A), item(A, A, A)])
    assert row.raw_agreement == 1.0 and row.cohen_kappa is None and row.krippendorff_alpha is None


def test_rows_per_policy_and_category_with_single_verdicts_left_out() -> None:
    rows = agreement_rows(
        [
            item(A, R, categories=("insult", "threat")),
            item(A, A, categories=("insult",)),
            item(R, categories=("insult",)),  # one verdict: not an agreement datum
            item(A, A, policy="strict", categories=("threat",)),
        ]
    )
    assert [(r.policy, r.category, r.items) for r in rows] == [
        ("default", ALL_CATEGORIES, 2),
        ("default", "insult", 2),
        ("default", "threat", 1),
        ("strict", ALL_CATEGORIES, 1),
        ("strict", "threat", 1),
    ]
    assert rows[2].raw_agreement == 0.0


def test_a_reviewer_gives_one_verdict_and_labels_are_checked() -> None:
    with pytest.raises(ValueError, match="at most one verdict"):
        RatedItem("p", (), (("rev0", A), ("rev0", R)))
    with pytest.raises(ValueError, match="approve, edit, reject"):
        RatedItem("p", (), (("rev0", "maybe"),))


def test_the_report_carries_and_prints_the_rows() -> None:
    outputs = [ReviewedOutput({"insult": 0.8}, ("insult",), "default", "approved")]
    report = build_report(outputs, rated=[item(A, A), item(A, R)])
    assert [r.category for r in report.agreement] == [ALL_CATEGORIES, "insult"]
    table = format_table(report)
    assert "agreement between reviewers" in table
    # raw 50.0%; kappa: first A,A, second A,R: p_o = .5, p_e = 1*.5 + 0*.5 = .5 -> 0;
    # alpha: o_AA = 2, o_AR = o_RA = 1, n_A = 3, n_R = 1, n = 4: D_o = 2/4, D_e = 2*3*1/(4*3) = .5 -> 0.
    [line] = [ln for ln in table.splitlines() if ln.startswith("default") and "(all)" in ln]
    assert line.split()[-5:] == ["2", "4", "50.0%", "0.00", "0.00"]
