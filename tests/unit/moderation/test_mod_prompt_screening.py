"""Prompt screening: a category fires on a prompt when the policy's own rule for it would fire on an
output; the prompt's action is the screening action of the most severe firing category."""

from __future__ import annotations

import pytest

from moderation.config import ModerationConfigError, build_policies
from moderation.masking import Masker
from moderation.moderator import Moderator
from moderation.policy import DEFAULT, PRESETS, Policy, Thresholds
from moderation.prompt_screening import PROMPT_PREFIX, screen_prompts, screening_verdict, withheld_decision
from moderation.testing import KeywordScorer
from moderation.types import Action

SCREENING = Policy(
    name="screening",
    thresholds={"toxicity": Thresholds(hold=0.5, block=0.9), "insult": Thresholds(hold=0.8)},
    span_actions={"profanity": Action.MASK},
    prompt_screening={"toxicity": Action.BLOCK, "profanity": Action.BLOCK},
)


@pytest.fixture()
def scorer() -> KeywordScorer:
    return KeywordScorer(
        {"toxicity": ["awful"], "insult": ["idiot"], "profanity": ["darn"]},
        hit=0.95,
        miss=0.1,
        emit_spans=False,
    )


@pytest.fixture()
def moderator(scorer: KeywordScorer) -> Moderator:
    spans = KeywordScorer({"profanity": ["darn"]}, name="words", emit_spans=True)
    policies = {**PRESETS, SCREENING.name: SCREENING, "plain": Policy(name="plain")}
    return Moderator([scorer, spans], policies, default_policy="screening", masker=Masker())


def test_a_named_category_that_fires_blocks_the_prompt(moderator: Moderator) -> None:
    (verdict,) = screen_prompts(moderator, ["you are awful"], policy="screening") or []
    assert verdict.screened_out and verdict.action is Action.BLOCK
    (reason,) = verdict.reasons
    assert reason.category == PROMPT_PREFIX + "toxicity" and reason.action is Action.BLOCK
    assert reason.score == pytest.approx(0.95) and reason.threshold == 0.9  # the rule that fired


def test_a_span_rule_that_only_masks_an_output_still_fires_on_the_prompt(moderator: Moderator) -> None:
    (verdict,) = screen_prompts(moderator, ["well darn it"], policy="screening") or []
    assert verdict.action is Action.BLOCK
    assert {r.category for r in verdict.reasons} == {"prompt:profanity"}


def test_categories_not_named_are_off_and_clean_prompts_pass(moderator: Moderator) -> None:
    insult, clean = screen_prompts(moderator, ["you idiot", "a quiet garden"], policy="screening") or []
    assert insult.evaluation.action is Action.HOLD, "the policy holds it as an output"
    assert not insult.screened_out and insult.action is Action.RELEASE and insult.reasons == ()
    assert not clean.screened_out


def test_below_the_policy_threshold_nothing_fires(scorer: KeywordScorer) -> None:
    lenient = Policy(
        name="lenient",
        thresholds={"toxicity": Thresholds(hold=0.99)},
        prompt_screening={"toxicity": Action.BLOCK},
    )
    moderator = Moderator([scorer], {"lenient": lenient}, default_policy="lenient", masker=Masker())
    (verdict,) = screen_prompts(moderator, ["you are awful"], policy=None) or []
    assert not verdict.screened_out, "0.95 is below this policy's 0.99: the rule does not fire"


def test_a_policy_without_screening_calls_no_scorer(moderator: Moderator, scorer: KeywordScorer) -> None:
    assert screen_prompts(moderator, ["you are awful"], policy="plain") is None
    assert scorer.calls == []


def test_the_withheld_decision_has_no_text_and_no_spans(moderator: Moderator) -> None:
    (verdict,) = screen_prompts(moderator, ["you are awful darn"], policy="screening") or []
    decision = withheld_decision(verdict)
    assert decision.action is Action.BLOCK and not decision.releasable
    assert decision.text == "" and decision.original_text == "" and decision.spans == ()
    assert decision.policy_name == "screening" and decision.policy_version == SCREENING.version
    assert all(r.category.startswith(PROMPT_PREFIX) for r in decision.reasons)
    assert decision.scores["toxicity"] == pytest.approx(0.95)


def test_screening_verdict_takes_the_most_severe_firing_category(moderator: Moderator) -> None:
    (evaluation,) = moderator.moderate(["awful idiot"], policy="screening")
    verdict = screening_verdict({"insult": Action.BLOCK}, evaluation)
    assert verdict.action is Action.BLOCK and [r.category for r in verdict.reasons] == ["prompt:insult"]
    both = screening_verdict({"insult": Action.HOLD, "toxicity": Action.BLOCK}, evaluation)
    assert both.action is Action.BLOCK
    assert [(r.category, r.action) for r in both.reasons] == [
        ("prompt:toxicity", Action.BLOCK),
        ("prompt:insult", Action.HOLD),
    ]
    held = screening_verdict({"insult": Action.HOLD}, evaluation)
    assert held.action is Action.HOLD and held.screened_out


def test_version_is_unchanged_without_screening_and_changes_with_it() -> None:
    assert "prompt_screening" not in DEFAULT.canonical()
    assert Policy(name="x", thresholds=DEFAULT.thresholds).version == DEFAULT.version
    screened = Policy(name="x", thresholds=DEFAULT.thresholds, prompt_screening={"toxicity": Action.BLOCK})
    assert screened.version != DEFAULT.version
    assert screened.canonical()["prompt_screening"] == {"toxicity": "block"}


def test_policy_refuses_a_screening_action_it_cannot_apply() -> None:
    with pytest.raises(ValueError, match="prompt screening of 'toxicity'"):
        Policy(name="x", prompt_screening={"toxicity": Action.MASK})


def test_config_reads_screening_inherits_and_turns_off() -> None:
    policies = build_policies(
        {
            "base": {"extends": "default", "prompt_screening": {"toxicity": "block", "threat": "block"}},
            "child": {"extends": "base", "prompt_screening": {"threat": "off", "insult": "hold"}},
        }
    )
    assert dict(policies["base"].prompt_screening) == {"toxicity": Action.BLOCK, "threat": Action.BLOCK}
    assert dict(policies["child"].prompt_screening) == {"toxicity": Action.BLOCK, "insult": Action.HOLD}
    assert policies["default"].prompt_screening == {}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("mask", "must be 'off', 'block', 'hold', got 'mask'"),
        (True, "must be 'off', 'block', 'hold', got True"),
    ],
)
def test_config_names_a_bad_screening_value(value: object, message: str) -> None:
    with pytest.raises(ModerationConfigError) as caught:
        build_policies({"p": {"prompt_screening": {"toxicity": value}}})
    assert str(caught.value) == f"moderation.policies.p.prompt_screening.toxicity: {message}"


def test_config_refuses_a_screening_that_is_not_a_table() -> None:
    with pytest.raises(ModerationConfigError, match=r"moderation\.policies\.p\.prompt_screening"):
        build_policies({"p": {"prompt_screening": "block"}})
