from __future__ import annotations

import math

import pytest

from moderation.identity import NeutralScores
from moderation.policy import DEFAULT, NON_FINITE_SCORE, PRESETS, STRICT, Policy, Thresholds, evaluate
from moderation.types import Action, Span

RULES = Policy(
    name="t",
    thresholds={"toxicity": Thresholds(hold=0.5, block=0.9), "threat": Thresholds(block=0.7)},
    span_actions={"profanity": Action.MASK, "slur": Action.BLOCK},
)


def decide(policy: Policy, scores: dict[str, float], spans: tuple[Span, ...] = (), text: str = "some text"):
    return evaluate(policy, scores=scores, spans=spans, text=text, score_sources={"toxicity": "detox"})


@pytest.mark.parametrize(
    ("scores", "action"),
    [
        ({"toxicity": 0.1, "threat": 0.1}, Action.RELEASE),
        ({"toxicity": 0.5}, Action.HOLD),  # at the threshold counts
        ({"toxicity": 0.89}, Action.HOLD),
        ({"toxicity": 0.9}, Action.BLOCK),
        ({"threat": 0.69}, Action.RELEASE),
        ({"threat": 0.7, "toxicity": 0.6}, Action.BLOCK),
        ({"unknown_category": 1.0}, Action.RELEASE),  # categories without a rule are recorded, not acted on
    ],
)
def test_thresholds(scores: dict[str, float], action: Action) -> None:
    assert decide(RULES, scores).action is action


def test_reasons_explain_the_decision_most_severe_first() -> None:
    verdict = decide(RULES, {"toxicity": 0.6, "threat": 0.95}, text="I will hurt you.")
    assert [(r.category, r.action, r.threshold) for r in verdict.reasons] == [
        ("threat", Action.BLOCK, 0.7),
        ("toxicity", Action.HOLD, 0.5),
    ]
    toxicity = verdict.reasons[1]
    assert toxicity.score == 0.6 and toxicity.scorer == "detox" and toxicity.excerpt == "I will hurt you."


def test_span_actions() -> None:
    text = "oh shit and worse"
    profane = Span(3, 7, "profanity", "words")
    slur = Span(12, 17, "slur", "words")
    masked = decide(RULES, {}, (profane,), text)
    assert masked.action is Action.MASK
    assert masked.mask_spans == (profane,)
    assert masked.reasons[0].excerpt == "shit" and masked.reasons[0].scorer == "words"
    blocked = decide(RULES, {}, (profane, slur), text)
    assert blocked.action is Action.BLOCK
    assert blocked.reasons[0].category == "slur"


def test_unknown_span_category_is_held() -> None:
    assert decide(RULES, {}, (Span(0, 4, "new_thing", "x"),)).action is Action.HOLD


def test_review_all_holds_everything_but_keeps_blocks() -> None:
    review = Policy(name="r", thresholds={"toxicity": Thresholds(block=0.9)}, review_all=True)
    clean = decide(review, {"toxicity": 0.0})
    assert clean.action is Action.HOLD and clean.reasons[-1].category == "review_all"
    masked = decide(review, {}, (Span(0, 4, "profanity", "w"),))
    assert masked.action is Action.HOLD
    assert decide(review, {"toxicity": 0.95}).action is Action.BLOCK


def test_excerpt_is_bounded() -> None:
    verdict = decide(RULES, {"toxicity": 0.99}, text="word " * 500)
    assert 0 < len(verdict.reasons[0].excerpt) <= 280


def test_version_is_a_hash_of_the_rules() -> None:
    same = Policy(name="other name", thresholds=dict(RULES.thresholds), span_actions=dict(RULES.span_actions))
    assert same.version == RULES.version  # the name is not a rule
    changed = Policy(
        name="t",
        thresholds={**RULES.thresholds, "toxicity": Thresholds(hold=0.51, block=0.9)},
        span_actions=dict(RULES.span_actions),
    )
    assert changed.version != RULES.version
    assert len(RULES.version) == 12
    assert len({p.version for p in PRESETS.values()}) == len(PRESETS)


def test_invalid_rules_are_refused() -> None:
    with pytest.raises(ValueError, match="above block"):
        Thresholds(hold=0.9, block=0.5)
    with pytest.raises(ValueError, match=r"within \[0, 1\]"):
        Thresholds(hold=1.5)
    with pytest.raises(ValueError, match="release"):
        Policy(name="x", span_actions={"profanity": Action.RELEASE})


def test_presets() -> None:
    assert set(PRESETS) == {"default", "strict", "permissive"}
    assert STRICT.review_all and not DEFAULT.review_all
    assert DEFAULT.span_actions["profanity"] is Action.MASK
    assert STRICT.span_actions["profanity"] is Action.HOLD
    # every preset is at least as strict as permissive on the categories permissive blocks
    for category, rule in PRESETS["permissive"].thresholds.items():
        assert DEFAULT.thresholds[category].block <= rule.block


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("category", ["toxicity", "threat", "unknown_category"])
def test_a_non_finite_score_holds_and_says_why(bad: float, category: str) -> None:
    """`NaN >= threshold` is false: without the check a broken scorer's NaN released the text. An
    infinity holds too, neither blocking nor releasing, wherever the policy has a rule or not."""
    verdict = decide(RULES, {category: bad, "toxicity" if category != "toxicity" else "threat": 0.1})
    assert verdict.action is Action.HOLD
    (reason,) = verdict.reasons
    assert reason.category == NON_FINITE_SCORE and reason.action is Action.HOLD
    assert category in reason.excerpt and repr(bad) in reason.excerpt
    assert math.isfinite(reason.score) and math.isfinite(reason.threshold)  # reasons are stored as JSON


def test_a_non_finite_score_names_its_scorer_and_keeps_other_rules() -> None:
    verdict = decide(RULES, {"toxicity": float("nan"), "threat": 0.95})
    assert verdict.action is Action.BLOCK  # a finite score that blocks still blocks
    assert [(r.category, r.action) for r in verdict.reasons] == [
        ("threat", Action.BLOCK),
        (NON_FINITE_SCORE, Action.HOLD),
    ]
    assert verdict.reasons[1].scorer == "detox" and "detox gave toxicity = nan" in verdict.reasons[1].excerpt


@pytest.mark.parametrize("neutral_score", [float("nan"), float("-inf")])
def test_a_non_finite_neutral_score_never_softens_a_block(neutral_score: float) -> None:
    neutral = NeutralScores(scores={"threat": neutral_score}, terms=("muslims",))
    verdict = evaluate(RULES, scores={"threat": 0.95}, spans=(), text="x", neutral=neutral)
    assert verdict.action is Action.BLOCK
    assert not verdict.identity_checks[0].softened
