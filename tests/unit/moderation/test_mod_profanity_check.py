from __future__ import annotations

import pytest

pytest.importorskip("profanity_check")

from moderation.scorers.profanity_check import ProfanityCheckScorer


@pytest.fixture(scope="module")
def scorer() -> ProfanityCheckScorer:
    return ProfanityCheckScorer()


def test_scores_in_its_own_category(scorer: ProfanityCheckScorer) -> None:
    clean, dirty = scorer.score(["have a lovely afternoon", "you are a fucking idiot"])
    assert set(clean.scores) == {"profanity_ml"} and clean.spans == ()
    assert 0.0 <= clean.scores["profanity_ml"] < 0.2 < 0.9 < dirty.scores["profanity_ml"] <= 1.0
    assert scorer.version.startswith("alt-profanity-check-") and "+allow-" in scorer.version


def test_allow_listed_phrases_are_not_scored(scorer: ProfanityCheckScorer) -> None:
    """The model reads "Dick" and "cock" as profanity whatever follows; the allow-list knows better."""
    bare = ProfanityCheckScorer(builtin_allow=False)
    texts = ["Dick Van Dyke was a great actor", "Cock-a-doodle-doo said the rooster", "what a dick"]
    with_list = [r.scores["profanity_ml"] for r in scorer.score(texts)]
    without = [r.scores["profanity_ml"] for r in bare.score(texts)]
    assert without[0] > 0.9 and without[1] > 0.9, "the model alone flags both names"
    assert with_list[0] < 0.2 and with_list[1] < 0.5
    assert with_list[2] == pytest.approx(without[2]) and with_list[2] > 0.5, "profanity itself still counts"
    assert bare.version != scorer.version
    extra = ProfanityCheckScorer(builtin_allow=False, extra_allow=["Dick Van Dyke"])
    assert extra.score(texts[:1])[0].scores["profanity_ml"] < 0.2


def test_batch_equals_one_by_one(scorer: ProfanityCheckScorer) -> None:
    texts = ["one", "shit happens", "a perfectly normal sentence about gardens", ""]
    batch = [r.scores["profanity_ml"] for r in scorer.score(texts)]
    single = [scorer.score([t])[0].scores["profanity_ml"] for t in texts]
    assert batch == pytest.approx(single)
    assert scorer.score([]) == []


def test_masked_profanity_reads_as_clean(scorer: ProfanityCheckScorer) -> None:
    # why the offline config feeds it masked text: the word list already handled the swear word
    raw, masked = scorer.score(["what the fuck, great game", "what the f***, great game"])
    assert masked.scores["profanity_ml"] < 0.5 < raw.scores["profanity_ml"]
