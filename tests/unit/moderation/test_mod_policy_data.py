"""Policies as stored data: a moderator re-decides under other policies without reloading its scorers,
and a policy is rebuilt exactly from its canonical rules (how an older decision is replayed)."""

from __future__ import annotations

import pytest

from moderation.config import build_policies
from moderation.masking import Masker
from moderation.moderator import Moderator, UnknownPolicyError
from moderation.policy import PRESETS, Policy
from moderation.testing import KeywordScorer
from moderation.types import Action


def test_with_policies_keeps_scorers_and_settings() -> None:
    scorer = KeywordScorer({"toxicity": ["idiot"]}, name="kw")
    moderator = Moderator(
        [scorer], PRESETS, default_policy="default", masker=Masker(), shadow_policies=["strict"]
    )
    stricter = build_policies({"default": {"extends": "strict", "review_all": True}})
    swapped = moderator.with_policies(stricter)
    assert swapped.scorers_info == moderator.scorers_info and swapped.masker is moderator.masker
    assert swapped.shadow_policies == ("strict",) and swapped.default_policy == "default"
    (decision,) = swapped.moderate(["a nice day"])
    assert decision.action is Action.HOLD and decision.policy_version == stricter["default"].version
    (unchanged,) = moderator.moderate(["a nice day"])  # the old one still decides by its own rules
    assert unchanged.action is Action.RELEASE
    assert len(scorer.calls) == 2  # one scorer object, called by both
    with pytest.raises(UnknownPolicyError):
        moderator.with_policies({"default": PRESETS["default"]})  # the shadow policy is gone


@pytest.mark.parametrize("name", [*PRESETS, "custom", "screening"])
def test_a_policy_rebuilds_from_its_canonical_rules(name: str) -> None:
    policies = build_policies(
        {
            "custom": {
                "extends": "strict",
                "thresholds": {"threat": {"hold": 0.1}, "toxicity": {}},
                "span_actions": {"slur": "block"},
                "unknown_span_action": "mask",
                "review_all": True,
            },
            "screening": {"prompt_screening": {"toxicity": "block", "profanity": "hold"}},
        }
    )
    policy = policies[name]
    rebuilt = Policy.from_canonical(name, policy.canonical())
    assert rebuilt.version == policy.version
    assert rebuilt == Policy(
        name=name,
        thresholds=policy.thresholds,
        span_actions=policy.span_actions,
        unknown_span_action=policy.unknown_span_action,
        review_all=policy.review_all,
        prompt_screening=policy.prompt_screening,
    )


@pytest.mark.parametrize(
    "rules",
    [
        {},
        {"thresholds": [], "span_actions": {}},
        {**PRESETS["default"].canonical(), "span_actions": {"x": "nope"}},
    ],
)
def test_garbage_is_not_a_policy(rules: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="not the canonical rules"):
        Policy.from_canonical("x", rules)
