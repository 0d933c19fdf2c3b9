"""The backtest on hand-made records: every expected count below is worked out by hand in the comments."""

from __future__ import annotations

import dataclasses
import math

import pytest

from moderation.backtest import (
    BacktestReport,
    RecordedOutput,
    backtest,
    format_backtest,
    proposed_action,
    recorded_output,
)
from moderation.config import ModerationConfigError, build_policies, build_policy
from moderation.identity import NeutralScores
from moderation.policy import NON_FINITE_SCORE, PRESETS, Policy, Thresholds
from moderation.types import Action, Span

# The proposal: hold toxicity at 0.5, block at 0.9; listed profanity held (not masked); nothing else.
PROPOSAL = Policy(
    name="tight",
    thresholds={"toxicity": Thresholds(hold=0.5, block=0.9)},
    span_actions={"profanity": Action.HOLD},
)


def out(
    action: Action,
    scores: dict[str, float],
    *,
    reasons: tuple[tuple[str, Action], ...] = (),
    spans: tuple[Span, ...] = (),
    verdict: str | None = None,
    neutral: NeutralScores | None = None,
) -> RecordedOutput:
    return RecordedOutput(action, scores, spans, reasons, neutral, verdict)  # type: ignore[arg-type]


SWEAR = Span(0, 4, "profanity", "wordlist")
INSULT_HELD = (("insult", Action.HOLD),)


def test_matrix_categories_and_verdicts_by_hand() -> None:
    outputs = [
        # 1. released at toxicity 0.2: proposal releases too (0.2 < 0.5). unchanged release->release
        out(Action.RELEASE, {"toxicity": 0.2}),
        # 2. released at 0.6: proposal holds (0.6 >= 0.5). stricter, by toxicity
        out(Action.RELEASE, {"toxicity": 0.6}),
        # 3. masked profanity at 0.1: proposal holds the span. stricter, by profanity
        out(Action.MASK, {"toxicity": 0.1}, spans=(SWEAR,), reasons=(("profanity", Action.MASK),)),
        # 4. held by toxicity 0.85 (live hold 0.8), rejected: proposal holds (0.85 < 0.9). unchanged
        out(Action.HOLD, {"toxicity": 0.85}, reasons=(("toxicity", Action.HOLD),), verdict="rejected"),
        # 5. held by insult 0.9, rejected: the proposal has no insult rule, toxicity 0.3 -> release.
        #    looser, by insult; a rejected output it would release
        out(Action.HOLD, {"toxicity": 0.3, "insult": 0.9}, reasons=INSULT_HELD, verdict="rejected"),
        # 6. held by insult, approved: released by the proposal. looser by insult; not "approved withheld"
        out(Action.HOLD, {"toxicity": 0.1, "insult": 0.85}, reasons=INSULT_HELD, verdict="approved"),
        # 7. held by toxicity 0.95 (live hold), approved: the proposal blocks (0.95 >= 0.9). stricter by
        #    toxicity; an approved output it would withhold
        out(Action.HOLD, {"toxicity": 0.95}, reasons=(("toxicity", Action.HOLD),), verdict="approved"),
        # 8. blocked by threat 0.9, no verdict; no toxicity score recorded: nothing fires -> release.
        #    looser by threat; toxicity counted as unscored
        out(Action.BLOCK, {"threat": 0.9}, reasons=(("threat", Action.BLOCK),)),
    ]
    report = backtest(PROPOSAL, outputs, skipped=2)
    assert report.outputs == 8 and report.skipped == 2
    assert (report.changed, report.stricter, report.looser) == (6, 3, 3)
    m = report.matrix
    assert dict(m["release"]) == {"release": 1, "mask": 0, "hold": 1, "block": 0}
    assert dict(m["mask"]) == {"release": 0, "mask": 0, "hold": 1, "block": 0}
    assert dict(m["hold"]) == {"release": 2, "mask": 0, "hold": 1, "block": 1}
    assert dict(m["block"]) == {"release": 1, "mask": 0, "hold": 0, "block": 0}
    shifts = {s.category: (s.stricter, s.looser) for s in report.categories}
    assert shifts == {"toxicity": (2, 0), "profanity": (1, 0), "insult": (0, 2), "threat": (0, 1)}
    v = report.verdicts
    assert dict(v["rejected"]) == {"release": 1, "mask": 0, "hold": 1, "block": 0}
    assert dict(v["approved"]) == {"release": 1, "mask": 0, "hold": 0, "block": 1}
    assert dict(v["edited"]) == {"release": 0, "mask": 0, "hold": 0, "block": 0}
    assert dict(v["unreviewed"]) == {"release": 2, "mask": 0, "hold": 2, "block": 0}
    assert report.rejected_released == 1 and report.approved_withheld == 1
    assert dict(report.unscored) == {"toxicity": 1}
    text = format_backtest(report)
    assert "outputs 8  changed 6  stricter 3  looser 3" in text
    assert "rejected outputs it would release: 1" in text
    assert "toxicity: 1" in text


def test_masked_counts_as_released_for_a_rejected_output() -> None:
    """A rejected output the proposal would mask still goes out (masked) without a human."""
    masking = Policy(name="m", thresholds={}, span_actions={"profanity": Action.MASK})
    rejected = out(Action.HOLD, {}, spans=(SWEAR,), reasons=(("profanity", Action.HOLD),), verdict="rejected")
    report = backtest(masking, [rejected])
    assert report.matrix["hold"]["mask"] == 1 and report.rejected_released == 1
    assert report.looser == 1 and report.categories[0].category == "profanity"


def test_identity_check_softens_only_with_a_recorded_neutral_score() -> None:
    blocking = Policy(name="b", thresholds={"identity_attack": Thresholds(hold=0.5, block=0.8)})
    neutral = NeutralScores({"identity_attack": 0.3}, ("muslim",), "v1")
    with_evidence = out(Action.HOLD, {"identity_attack": 0.9}, neutral=neutral)
    without = out(Action.HOLD, {"identity_attack": 0.9})
    assert proposed_action(blocking, with_evidence)[0] is Action.HOLD  # 0.3 < 0.8: softened as live
    assert proposed_action(blocking, without)[0] is Action.BLOCK  # no evidence: the block stays


def test_a_recorded_non_finite_score_holds_under_any_policy() -> None:
    broken = out(Action.HOLD, {"insult": 0.01}, reasons=((NON_FINITE_SCORE, Action.HOLD),))
    assert proposed_action(PRESETS["permissive"], broken) == (Action.HOLD, (NON_FINITE_SCORE,))
    # ... and a proposal that blocks anyway keeps the block
    strict_insult = Policy(name="s", thresholds={"insult": Thresholds(block=0.0)})
    assert proposed_action(strict_insult, broken)[0] is Action.BLOCK


def test_review_all_holds_everything() -> None:
    report = backtest(PRESETS["strict"], [out(Action.RELEASE, {"toxicity": 0.0})])
    assert report.matrix["release"]["hold"] == 1
    assert report.categories[0].category == "review_all"


def test_recorded_output_reads_the_stored_shapes() -> None:
    stored = recorded_output(
        action="hold",
        scores={"toxicity": 0.7, "bad": "x", "flag": True},
        reasons=[
            {"category": "toxicity", "action": "hold", "score": 0.7, "threshold": 0.5, "scorer": "d"},
            {"category": "weird", "action": "explode"},
            "not a reason",
        ],
        spans=[dataclasses.asdict(SWEAR), {"start": 1}],
        identity_checks=[
            {
                "category": "toxicity",
                "neutral_score": 0.2,
                "substituted_terms": ["gay"],
                "terms_version": "t1",
            }
        ],
        verdict="edited",
    )
    assert stored.action is Action.HOLD and dict(stored.scores) == {"toxicity": 0.7}
    assert stored.spans == (SWEAR,)
    assert stored.reasons == (("toxicity", Action.HOLD),)
    assert stored.neutral == NeutralScores({"toxicity": 0.2}, ("gay",), "t1")
    assert stored.verdict == "edited"
    with pytest.raises(ValueError, match="recorded action"):
        recorded_output(action="held", scores={}, reasons=[], spans=[], identity_checks=[])


def test_an_empty_window_gives_zeros_of_the_same_shape() -> None:
    report = backtest(PROPOSAL, [])
    assert isinstance(report, BacktestReport) and report.outputs == 0
    assert all(n == 0 for row in report.matrix.values() for n in row.values())
    assert set(report.verdicts) == {"approved", "edited", "rejected", "unreviewed"}
    assert math.isclose(sum(report.unscored.values()), 0)


def test_build_policy_names_errors_like_the_config_and_extends_known_policies() -> None:
    known = build_policies({"house": {"extends": "default", "thresholds": {"insult": {"hold": 0.6}}}})
    proposal = build_policy("house", {"extends": "house", "thresholds": {"toxicity": {}}}, known=known)
    assert "toxicity" not in proposal.thresholds and proposal.thresholds["insult"].hold == 0.6
    with pytest.raises(ModerationConfigError, match=r"moderation\.policies\.house\.thresholds\.insult\.hold"):
        build_policy("house", {"thresholds": {"insult": {"hold": 2}}}, known=known)
    with pytest.raises(ModerationConfigError, match="extends: unknown policy 'nope'"):
        build_policy("house", {"extends": "nope"}, known=known)
