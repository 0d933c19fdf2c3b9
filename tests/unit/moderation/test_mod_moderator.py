from __future__ import annotations

import json
import logging
from collections.abc import Sequence

import pytest

from moderation.masking import Masker
from moderation.moderator import Moderator, UnknownPolicyError
from moderation.policy import NON_FINITE_SCORE, PRESETS
from moderation.replay import record_decision
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


class Fixed:
    """A scorer that gives every text the same scores (NaN included: a model that broke on its input)."""

    def __init__(self, name: str, **scores: float) -> None:
        self.name = name
        self.version = "1"
        self._scores = scores

    def score(self, texts: Sequence[str]) -> list[ScoreResult]:
        return [ScoreResult(scores=dict(self._scores)) for _ in texts]


@pytest.mark.parametrize("order", ["nan_first", "nan_second"])
def test_a_nan_score_holds_whichever_scorer_merges_first(
    order: str, caplog: pytest.LogCaptureFixture
) -> None:
    """NaN lost the max-merge when it came second (`nan > 0.1` is false) and failed every threshold when it
    came first: either way the text was released."""
    broken, fine = Fixed("broken", toxicity=float("nan")), Fixed("fine", toxicity=0.1, insult=0.2)
    scorers = (broken, fine) if order == "nan_first" else (fine, broken)
    with caplog.at_level(logging.WARNING, logger="moderation.moderator"):
        [d] = make(*scorers).moderate(["a perfectly nice day"])
    assert d.action is Action.HOLD and not d.releasable
    assert [(r.category, r.scorer) for r in d.reasons] == [(NON_FINITE_SCORE, "broken")]
    assert "toxicity" in d.reasons[0].excerpt
    assert d.scores == {"insult": 0.2}  # finite numbers only: the decision is stored as JSON
    assert json.loads(json.dumps(record_decision(d), allow_nan=False))["action"] == "hold"
    [record] = [r for r in caplog.records if r.name == "moderation.moderator"]
    assert record.levelno == logging.WARNING and "'broken'" in record.getMessage()
    assert "toxicity" in record.getMessage() and "nice day" not in record.getMessage()


def test_a_nan_score_holds_under_every_policy_and_stops_a_stream() -> None:
    moderator = make(Fixed("broken", profanity_ml=float("nan")))
    for name in PRESETS:
        assert moderator.moderate(["hello"], policy=name)[0].action is Action.HOLD
    stream = moderator.stream()
    assert stream.feed("one two three four five ") == ""
    assert stream.stopped
    rest, decision = stream.finish()
    assert rest == "" and decision.action is Action.HOLD
