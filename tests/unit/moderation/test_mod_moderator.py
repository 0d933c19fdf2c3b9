from __future__ import annotations

from collections.abc import Sequence

import pytest

from moderation.masking import Masker
from moderation.moderator import Moderator, UnknownPolicyError
from moderation.policy import PRESETS
from moderation.scorers.profanity import ProfanityScorer
from moderation.testing import KeywordScorer
from moderation.types import Action, ScoreResult


def make(*scorers, masked=(), masker: Masker | None = None) -> Moderator:
    return Moderator(
        list(scorers),
        PRESETS,
        default_policy="default",
        masker=masker or Masker(),
        masked_scorers=list(masked),
    )


def test_every_action_end_to_end(profanity: ProfanityScorer) -> None:
    keywords = KeywordScorer({"toxicity": ["idiot"], "threat": ["kill you"]}, name="kw")
    moderator = make(profanity, keywords)
    texts = ["a nice day", "a nice fucking day", "you idiot", "I will kill you", "you shit idiot"]
    decisions = moderator.moderate(texts)
    assert [d.action for d in decisions] == [
        Action.RELEASE,
        Action.MASK,
        Action.HOLD,
        Action.BLOCK,
        Action.HOLD,
    ]
    release, mask, hold, block, hold_masked = decisions
    assert release.text == "a nice day" and release.reasons == ()
    assert mask.text == "a nice f****** day" and mask.original_text == "a nice fucking day"
    assert hold.text == hold.original_text == "you idiot"  # held: original kept for the reviewer
    assert hold_masked.text == "you shit idiot"  # not masked either: a human decides on the original
    assert block.reasons[0].category == "threat" and block.reasons[0].scorer == "kw"
    assert mask.scores == {"profanity": 1.0, "toxicity": 0.0, "threat": 0.0}
    for d in decisions:
        assert d.policy_name == "default" and d.policy_version == PRESETS["default"].version
        assert d.scorers == moderator.scorers_info


def test_each_scorer_is_called_once_per_batch() -> None:
    a = KeywordScorer({"toxicity": ["x"]}, name="a")
    b = KeywordScorer({"insult": ["y"]}, name="b")
    texts = [f"text {i}" for i in range(7)]
    make(a, b).moderate(texts)
    assert a.calls == [texts] and b.calls == [texts]
    make(a).moderate([])
    assert len(a.calls) == 1  # nothing to score, no call


def test_masked_scorers_see_masked_text(profanity: ProfanityScorer) -> None:
    later = KeywordScorer({"insult": ["idiot"]}, name="later")
    moderator = make(profanity, masked=[later])
    decisions = moderator.moderate(["what the fuck", "fucking idiot"])
    assert later.calls == [["what the f***", "f****** idiot"]]
    assert [d.action for d in decisions] == [Action.MASK, Action.HOLD]  # default holds insult >= 0.8
    assert [i.name for i in moderator.scorers_info] == ["profanity", "later"]


def test_policies_by_name(profanity: ProfanityScorer) -> None:
    moderator = make(profanity)
    assert moderator.policy_names == ("default", "strict", "permissive")
    assert moderator.default_policy == "default"
    [strict] = moderator.moderate(["oh shit"], policy="strict")
    assert strict.action is Action.HOLD and strict.policy_name == "strict"
    with pytest.raises(UnknownPolicyError, match="nope"):
        moderator.moderate(["x"], policy="nope")
    with pytest.raises(UnknownPolicyError):
        moderator.stream(policy="nope")


def test_scores_merge_by_max_and_remember_the_scorer() -> None:
    low = KeywordScorer({"toxicity": ["never"]}, name="low")
    high = KeywordScorer({"toxicity": ["bad"]}, name="high")
    [d] = make(low, high).moderate(["bad bad"])
    assert d.scores["toxicity"] == 1.0
    assert d.reasons[0].scorer == "high"


class Broken:
    name = "broken"
    version = "1"

    def score(self, texts: Sequence[str]) -> list[ScoreResult]:
        return [ScoreResult(scores={})]  # one result whatever the batch size


def test_a_scorer_returning_the_wrong_count_fails_loudly() -> None:
    with pytest.raises(RuntimeError, match="returned 1 results for 2 texts"):
        make(Broken()).moderate(["a", "b"])


def test_construction_errors(profanity: ProfanityScorer) -> None:
    with pytest.raises(ValueError, match="at least one scorer"):
        make()
    with pytest.raises(ValueError, match="unique"):
        make(profanity, ProfanityScorer())
    with pytest.raises(UnknownPolicyError):
        Moderator([profanity], PRESETS, default_policy="missing", masker=Masker())
