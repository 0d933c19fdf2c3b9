"""The policy report, against expectations computed by hand (the arithmetic is in the comments)."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Collection

import pytest

from moderation.policy import Policy, Thresholds
from moderation.report import (
    Distribution,
    ReviewedOutput,
    ReviewVerdict,
    build_report,
    histogram,
    suggest_hold_threshold,
)
from moderation.report_render import format_table, render_svg

EDGES = tuple(i / 10 for i in range(11))
SVG = "{http://www.w3.org/2000/svg}"

# policy "p", one category; reviewed because held by review_all (low scores) or by the rule (>= 0.5)
ROWS = [
    (0.05, "approved", "review_all"),
    (0.10, "approved", "review_all"),
    (0.20, "approved", "review_all"),
    (0.30, "rejected", "review_all"),
    (0.40, "approved", "review_all"),
    (0.50, "approved", "identity_attack"),
    (0.60, "rejected", "identity_attack"),
    (0.70, "edited", "identity_attack"),
    (0.80, "approved", "identity_attack"),
    (0.90, "rejected", "identity_attack"),
]
POLICIES = {"p": Policy("p", thresholds={"identity_attack": Thresholds(hold=0.5, block=0.8)})}


def outputs(policy: str = "p") -> list[ReviewedOutput]:
    return [ReviewedOutput({"identity_attack": s}, (held,), policy, v) for s, v, held in ROWS]


def pairs(bad: Collection[str] = ("rejected",)) -> list[tuple[float, bool]]:
    return [(s, v in bad) for s, v, _ in ROWS]


# ---- the suggested threshold -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        # rejected = {0.3, 0.6, 0.9}; rate(t) = rejected below t / all below t:
        # t: .05 0/0, .1 0/1, .2 0/2, .3 0/3, .4 1/4, .5 1/5, .6 1/6, .7 2/7, .8 2/8, .9 2/9, 1.0 3/10
        (0.0, 0.30),  # last t with no rejected below it
        (0.20, 0.60),  # .4 = .25 fails but .5 = .20 (equal: within) and .6 = .167 pass; .7 = .286 fails
        (0.25, 0.90),  # .8 = .25 and .9 = .222 pass; 1.0 = .30 fails
        (0.30, 1.00),  # releasing everything: 3/10 = .30
        (0.10, 0.30),  # .4 = .25 > .10, and every later rate is above .10
    ],
)
def test_suggestion_on_the_constructed_set(target: float, expected: float) -> None:
    assert suggest_hold_threshold(pairs(), target_rate=target) == expected


def test_edited_as_rejected_changes_the_suggestion() -> None:
    # bad = {0.3, 0.6, 0.7, 0.9}: .7 = 2/7, .8 = 3/8, .9 = 3/9, 1.0 = 4/10 all above .25; .6 = 1/6 passes
    assert suggest_hold_threshold(pairs({"rejected", "edited"}), target_rate=0.25) == 0.60


def test_suggestion_edge_cases() -> None:
    assert suggest_hold_threshold([], target_rate=0.01) is None
    # all rejected: only a threshold at the lowest score releases nothing
    assert suggest_hold_threshold([(0.6, True), (0.2, True)], target_rate=0.01) == 0.2
    # all approved: nothing in the data argues for holding below 1.0 (1.0 itself is always held)
    assert suggest_hold_threshold([(0.2, False), (0.6, False)], target_rate=0.0) == 1.0
    assert suggest_hold_threshold([(1.0, False), (1.0, True)], target_rate=0.0) == 1.0
    # the lowest score rejected, target 0: hold from there
    assert suggest_hold_threshold([(0.1, True), (0.2, False)], target_rate=0.0) == 0.1


def test_ties_at_the_threshold_are_held() -> None:
    tied = [(0.5, True), (0.5, False), (0.3, False)]
    # t = 0.5 releases only 0.3 (a score equal to the threshold is held, as Thresholds does): 0/1
    assert suggest_hold_threshold(tied, target_rate=0.0) == 0.5
    # t = 1.0 releases all three: 1/3 <= 0.34
    assert suggest_hold_threshold(tied, target_rate=0.34) == 1.0
    assert suggest_hold_threshold(tied, target_rate=0.33) == 0.5


def test_rate_equal_to_the_target_is_within_it() -> None:
    data = [(0.1, False), (0.2, True), (0.3, False), (0.4, False)]
    assert suggest_hold_threshold(data, target_rate=0.25) == 1.0  # 1/4
    assert suggest_hold_threshold(data, target_rate=0.24) == 0.2  # .4 = 1/3, .3 = 1/2 fail; .2 = 0/1


def test_suggestion_input_is_checked() -> None:
    with pytest.raises(ValueError, match="target_rate"):
        suggest_hold_threshold([(0.1, False)], target_rate=1.5)
    with pytest.raises(ValueError, match="scores"):
        suggest_hold_threshold([(1.2, False)], target_rate=0.1)
    with pytest.raises(ValueError, match="scores"):
        suggest_hold_threshold([(math.nan, False)], target_rate=0.1)


# ---- the report ----------------------------------------------------------------------------------------


def test_histogram_bins() -> None:
    assert histogram([0.0, 0.1, 0.3, 0.99, 1.0], EDGES) == (1, 1, 0, 1, 0, 0, 0, 0, 0, 2)
    assert histogram([], EDGES) == (0,) * 10


def test_report_rows_by_hand() -> None:
    report = build_report(outputs(), target_rate=0.2, policies=POLICIES)
    assert (report.outputs, report.reviewed, report.edges) == (10, 10, EDGES)
    ia, review_all = report.categories
    assert (ia.policy, ia.category) == ("p", "identity_attack")
    # held by the rule: 0.5 approved, 0.6 rejected, 0.7 edited, 0.8 approved, 0.9 rejected
    assert (ia.held, ia.held_approved, ia.held_edited, ia.held_rejected) == (5, 2, 1, 2)
    assert ia.false_hold_rate == 0.4 and ia.share(ia.held_rejected) == 0.4
    assert ia.reviewed == 10
    # approved: .05 .1 .2 .4 .5 .8 -> mean 2.05 / 6, median (.2 + .4) / 2
    assert ia.approved.count == 6
    assert ia.approved.mean == pytest.approx(2.05 / 6) and ia.approved.median == pytest.approx(0.3)
    assert ia.approved.bins == (1, 1, 1, 0, 1, 1, 0, 0, 1, 0)
    assert ia.rejected == Distribution(3, pytest.approx(0.6), 0.6, (0, 0, 0, 1, 0, 0, 1, 0, 0, 1))  # type: ignore[arg-type]
    assert ia.edited.bins == (0, 0, 0, 0, 0, 0, 0, 1, 0, 0)
    assert (ia.current_hold, ia.current_block) == (0.5, 0.8)
    assert ia.suggested_hold == 0.6
    assert (ia.released_at_suggestion, ia.rejected_at_suggestion) == (6, 1)  # .05 .1 .2 .3 .4 .5; .3 rejected
    # review_all held the low five: 4 approved, 1 rejected; it has no score, so no distribution
    assert (review_all.category, review_all.held, review_all.held_approved, review_all.held_rejected) == (
        "review_all",
        5,
        4,
        1,
    )
    assert review_all.reviewed == 0 and review_all.suggested_hold is None and review_all.current_hold is None


def test_report_edited_flag_and_policies_kept_apart() -> None:
    both = [*outputs("p"), *outputs("q")[:3]]  # q: three approved only
    report = build_report(both, target_rate=0.25, edited_counts_as_rejected=True)
    by_key = {(r.policy, r.category): r for r in report.categories}
    assert by_key[("p", "identity_attack")].suggested_hold == 0.6  # see test_edited_as_rejected...
    assert by_key[("p", "identity_attack")].rejected_at_suggestion == 1  # .3 (.5 and below)
    q = by_key[("q", "identity_attack")]
    assert (q.reviewed, q.held, q.suggested_hold, q.current_hold) == (3, 0, 1.0, None)
    assert report.edited_counts_as_rejected


def test_empty_report() -> None:
    report = build_report([], target_rate=0.01)
    assert (report.outputs, report.reviewed, report.categories, report.shadows) == (0, 0, (), ())
    assert "(no reviewed outputs)" in format_table(report)
    root = ET.fromstring(render_svg(report))
    assert "no reviewed outputs" in "".join(root.itertext())


def test_unreviewed_outputs_only_count_for_shadows() -> None:
    items = [
        ReviewedOutput(
            {"toxicity": 0.9}, ("toxicity",), "default", "approved", {"strict": "hold", "lax": "mask"}
        ),
        ReviewedOutput(
            {"toxicity": 0.95}, ("toxicity",), "default", "rejected", {"strict": "block", "lax": "release"}
        ),
        ReviewedOutput({"toxicity": 0.1}, (), "default", None, {"strict": "hold", "lax": "release"}),
        ReviewedOutput({"toxicity": 0.2}, (), "default", None, {"strict": "release"}),
    ]
    report = build_report(items)
    [row] = report.categories
    assert (row.reviewed, row.held) == (2, 2)  # the unreviewed ones are not data for thresholds
    lax, strict = report.shadows
    assert (lax.policy, lax.shadow, lax.outputs) == ("default", "lax", 3)
    assert dict(lax.would_release) == {"approved": 1, "edited": 0, "rejected": 1, "unreviewed": 1}
    assert sum(lax.would_hold.values()) == sum(lax.would_block.values()) == 0
    assert strict.outputs == 4
    assert dict(strict.would_release) == {"approved": 0, "edited": 0, "rejected": 0, "unreviewed": 1}
    assert dict(strict.would_hold) == {"approved": 1, "edited": 0, "rejected": 0, "unreviewed": 1}
    assert dict(strict.would_block) == {"approved": 0, "edited": 0, "rejected": 1, "unreviewed": 0}
    table = format_table(report)
    assert "in shadow lax" in table and "release 3 (1)" in table
    assert "in shadow strict" in table and "hold 2 (0), block 1 (1); 2 unreviewed" in table


def test_reviewed_output_is_checked() -> None:
    edited = ReviewedOutput({}, ["x"], "p", "edited")  # type: ignore[arg-type]
    assert edited.verdict is ReviewVerdict.EDITED and edited.held_by == ("x",)
    with pytest.raises(ValueError):
        ReviewedOutput({}, (), "p", "maybe")
    with pytest.raises(ValueError, match="strict"):
        ReviewedOutput({}, (), "p", None, {"strict": "allow"})
    with pytest.raises(ValueError, match="bins"):
        build_report([], bins=0)


# ---- rendering -----------------------------------------------------------------------------------------


def test_table_lists_each_row() -> None:
    table = format_table(build_report(outputs(), target_rate=0.2, policies=POLICIES))
    [line] = [ln for ln in table.splitlines() if ln.startswith("p ") and "identity_attack" in ln]
    assert line.split() == [
        "p",
        "identity_attack",
        "5",
        "40.0%",
        "20.0%",
        "40.0%",
        "10",
        "0.34",
        "0.60",
        "0.50",
        "0.80",
        "0.60",
        "6/1",
    ]
    assert "at most 20.0%" in table


def test_svg_is_valid_xml_with_bars_and_threshold_marks() -> None:
    svg = render_svg(build_report(outputs(), target_rate=0.2, policies=POLICIES))
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    [panel] = [g for g in root.iter(f"{SVG}g") if g.get("class") == "panel"]  # review_all has no scores
    bars = [r for r in panel.iter(f"{SVG}rect")]
    assert len(bars) == 6 + 3  # non-empty approved bins + non-empty rejected bins
    labels = [t.text for t in panel.iter(f"{SVG}text")]
    assert {"hold 0.50", "block 0.80", "suggested hold 0.60"} <= set(labels)
    dashed = [ln for ln in panel.iter(f"{SVG}line") if ln.get("stroke-dasharray")]
    plot_left, plot_width = 48, 640 - 48 - 16
    assert [float(ln.get("x1", "nan")) for ln in dashed] == [
        pytest.approx(plot_left + 0.6 * plot_width, abs=0.1)
    ]
    for bad in ("<script", "href", "http://www.w3.org/1999/xlink", "@import", "url("):
        assert bad not in svg


def test_svg_escapes_every_text() -> None:
    nasty = 'p<script>alert("x")</script>&'
    items = [
        ReviewedOutput({"cat</text><script>": 0.7}, ("cat</text><script>",), nasty, "rejected"),
        ReviewedOutput({"cat</text><script>": 0.2}, (), nasty, "approved"),
    ]
    report = build_report(items)
    svg = render_svg(report)
    root = ET.fromstring(svg)  # would raise on unescaped markup
    assert "<script" not in svg and "&lt;script&gt;" in svg
    assert not list(root.iter(f"{SVG}script"))
    assert any(nasty in (t.text or "") for t in root.iter(f"{SVG}text"))  # the text survives, as text
