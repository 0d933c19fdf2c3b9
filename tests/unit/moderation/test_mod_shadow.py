"""Shadow policies: computed from the same scores, returned beside the live decision, never acting."""

from __future__ import annotations

import dataclasses

import pytest

from moderation.identity import IdentityCheckSettings
from moderation.masking import Masker
from moderation.moderator import Moderator, UnknownPolicyError
from moderation.policy import PRESETS
from moderation.scorers.profanity import ProfanityScorer
from moderation.testing import KeywordScorer
from moderation.types import Action, Decision

TEXTS = [
    "a nice day",
    "a nice fucking day",
    "you idiot",
    "I will kill you",
    "muslims are welcome",
    "muslim scum",
]


def scorers() -> list[KeywordScorer]:
    return [
        KeywordScorer({"insult": ["idiot"], "threat": ["kill"]}, name="kw", hit=0.85, miss=0.0),
        KeywordScorer({"identity_attack": ["muslim", "muslims", "scum"]}, name="ia", hit=0.95, miss=0.1),
    ]


def make(profanity: ProfanityScorer, *, shadow_policies=(), check: bool = True) -> Moderator:
    return Moderator(
        [profanity, *scorers()],
        PRESETS,
        default_policy="default",
        masker=Masker(),
        identity_check=IdentityCheckSettings() if check else None,
        shadow_policies=shadow_policies,
    )


def live(decision: Decision) -> Decision:
    return dataclasses.replace(decision, shadow=())


@pytest.mark.parametrize("check", [True, False])
def test_shadow_never_changes_the_live_decision(profanity: ProfanityScorer, check: bool) -> None:
    plain = make(profanity, check=check).moderate(TEXTS)
    shadowed = make(profanity, check=check).moderate(TEXTS, shadow=["strict", "permissive"])
    assert [live(d) for d in shadowed] == plain
    assert [d.action for d in plain][:4] == [Action.RELEASE, Action.MASK, Action.HOLD, Action.BLOCK]
    assert all(d.shadow == () for d in plain)


@pytest.mark.parametrize("check", [True, False])
def test_shadow_equals_the_live_decision_under_that_policy(profanity: ProfanityScorer, check: bool) -> None:
    decisions = make(profanity, check=check).moderate(TEXTS, shadow=["strict", "permissive", "default"])
    for name in ("strict", "permissive", "default"):
        direct = make(profanity, check=check).moderate(TEXTS, policy=name, shadow=())
        for d, expected in zip(decisions, direct, strict=True):
            [s] = [s for s in d.shadow if s.policy_name == name]
            assert (s.policy_version, s.action, s.reasons, s.identity_checks) == (
                expected.policy_version,
                expected.action,
                expected.reasons,
                expected.identity_checks,
            )
    # and the shadows really differ from the live policy somewhere, or this test would prove nothing
    assert [d.shadow[0].action for d in decisions] != [d.action for d in decisions]
    assert [s.policy_name for s in decisions[0].shadow] == ["strict", "permissive", "default"]


def test_scorers_are_called_once_whatever_the_shadows(profanity: ProfanityScorer) -> None:
    kw, ia = scorers()
    moderator = Moderator(
        [profanity, kw, ia], PRESETS, default_policy="permissive", masker=Masker(), shadow_policies=["strict"]
    )
    texts = TEXTS[:4]
    [*_, threat] = moderator.moderate(texts, shadow=["strict", "default", "permissive"])
    assert kw.calls == [texts] and ia.calls == [texts]
    assert threat.action is Action.HOLD  # permissive: threat 0.85 < block 0.9
    assert [s.action for s in threat.shadow] == [Action.BLOCK, Action.BLOCK, Action.HOLD]


def test_one_shared_identity_rescoring_for_live_and_shadows(profanity: ProfanityScorer) -> None:
    kw, ia = scorers()
    moderator = Moderator(
        [profanity, kw, ia],
        PRESETS,
        default_policy="permissive",  # identity_attack hold 0.7 / block 0.9
        masker=Masker(),
        identity_check=IdentityCheckSettings(),
    )
    [d] = moderator.moderate(["muslims are welcome"], shadow=["default", "strict"])
    assert ia.calls == [["muslims are welcome"], ["people are welcome"]]  # one extra call, not three
    assert d.action is Action.HOLD and [s.action for s in d.shadow] == [Action.HOLD, Action.HOLD]
    assert all(s.identity_checks[0].softened for s in d.shadow)


def test_configured_shadows_apply_unless_told_otherwise(profanity: ProfanityScorer) -> None:
    moderator = make(profanity, shadow_policies=["strict"])
    assert moderator.shadow_policies == ("strict",)
    [d] = moderator.moderate(["a nice day"])
    assert [(s.policy_name, s.action) for s in d.shadow] == [("strict", Action.HOLD)]  # review_all
    assert d.action is Action.RELEASE and d.text == "a nice day"
    [none] = moderator.moderate(["a nice day"], shadow=())
    assert none.shadow == ()


def test_unknown_shadow_policies_are_refused(profanity: ProfanityScorer) -> None:
    with pytest.raises(UnknownPolicyError, match="nope"):
        make(profanity, shadow_policies=["nope"])
    with pytest.raises(UnknownPolicyError, match="nope"):
        make(profanity).moderate(["x"], shadow=["nope"])
    with pytest.raises(UnknownPolicyError, match="nope"):
        make(profanity).stream(shadow=["nope"])
    with pytest.raises(TypeError, match="not one string"):
        make(profanity).moderate(["x"], shadow="strict")
    with pytest.raises(TypeError, match="not one string"):
        make(profanity, shadow_policies="strict")
    with pytest.raises(TypeError, match="not one string"):
        make(profanity).stream(shadow="strict")


def test_stream_shadows_judge_the_whole_text(profanity: ProfanityScorer) -> None:
    stream = make(profanity, shadow_policies=["strict"]).stream()
    sent = "".join(stream.feed(d) for d in ["what a ", "fucking ", "nice ", "day ", "today"])
    rest, decision = stream.finish()
    assert sent + rest == decision.text == "what a f****** nice day today"
    assert [(s.policy_name, s.action) for s in decision.shadow] == [("strict", Action.HOLD)]
    explicit = make(profanity, shadow_policies=["strict"]).stream(shadow=["permissive"])
    explicit.feed("hello there")
    assert [s.policy_name for s in explicit.finish()[1].shadow] == ["permissive"]
