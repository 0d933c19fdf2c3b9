"""The identity-term check: a block caused by naming a group becomes a hold; nothing is ever released."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from moderation.identity import (
    IdentityCheckSettings,
    IdentityTerms,
    NeutralScores,
    builtin_terms,
    parse_terms,
)
from moderation.masking import Masker
from moderation.moderator import Moderator
from moderation.policy import DEFAULT, PRESETS, STRICT, categories_to_check, evaluate
from moderation.replay import record_decision
from moderation.scorers.profanity import ProfanityScorer
from moderation.testing import KeywordScorer
from moderation.types import Action, IdentityCheck, ScoreResult

TERMS = IdentityTerms.builtin()


def biased(*words: str, name: str = "biased", category: str = "identity_attack") -> KeywordScorer:
    """A crafted 'model' that scores 0.95 when a word occurs, 0.1 otherwise (like a biased classifier)."""
    return KeywordScorer({category: list(words)}, name=name, hit=0.95, miss=0.1)


def make(*scorers, masked=(), check: bool = True, **kwargs) -> Moderator:
    return Moderator(
        list(scorers),
        PRESETS,
        default_policy="default",
        masker=Masker(),
        masked_scorers=list(masked),
        identity_check=IdentityCheckSettings() if check else None,
        **kwargs,
    )


# ---- the term list -------------------------------------------------------------------------------------


def test_parse_terms_format() -> None:
    lines = [
        "# comment",
        "",
        "Gay = person  # trailing",
        "jews=people",
        "muslim",
        "African   American = person",
    ]
    assert parse_terms(lines) == {
        "gay": "person",
        "jews": "people",
        "muslim": "person",
        "african american": "person",
    }
    with pytest.raises(ValueError, match="line 2"):
        parse_terms(["gay = person", "= people"])
    with pytest.raises(ValueError, match="line 1"):
        parse_terms(["gay ="])


def test_builtin_list_covers_the_usual_identities() -> None:
    terms = builtin_terms()
    for term in ("gay", "lesbian", "muslim", "jewish", "black", "white", "christian", "transgender"):
        assert terms[term] == "person"
    assert terms["muslims"] == terms["jews"] == "people"
    assert len(terms) >= 60


def test_whole_words_case_kept_longest_first() -> None:
    neutral = TERMS.neutralise("MUSLIMS and Jews, an African American gay man; Blackpool, whitening, gayety")
    assert neutral.text == "PEOPLE and People, an Person person man; Blackpool, whitening, gayety"
    assert neutral.terms == ("muslims", "jews", "african american", "gay")


def test_offsets_map_between_original_and_neutral() -> None:
    text = "the gay  couple and the Transgender teacher"
    neutral = TERMS.neutralise(text)
    assert neutral.text == "the person  couple and the Person teacher"
    for sub in neutral.substitutions:
        assert " ".join(text[sub.start : sub.end].split()).lower() == sub.term
        assert neutral.text[sub.new_start : sub.new_end] == sub.replacement
    couple = text.index("couple")
    assert neutral.map_span(couple, couple + 6) == (
        neutral.text.index("couple"),
        neutral.text.index("couple") + 6,
    )
    gay = text.index("gay")
    assert neutral.map_span(gay + 1, gay + 2) == (4, 10)  # inside a term: widened to the replacement
    assert neutral.map_span(0, len(text)) == (0, len(neutral.text))


@given(st.lists(st.sampled_from(["gay", "Muslims", "x", "  ", "white", "bLaCk", "é", "jew", "-", "ok"])))
def test_text_outside_terms_is_untouched(parts: list[str]) -> None:
    text = " ".join(parts)
    neutral = TERMS.neutralise(text)
    pos = new = 0
    for sub in neutral.substitutions:
        assert text[pos : sub.start] == neutral.text[new : sub.new_start]
        pos, new = sub.end, sub.new_end
    assert text[pos:] == neutral.text[new:]
    assert TERMS.neutralise(neutral.text).substitutions == ()  # substitutes are not terms themselves


def test_version_follows_the_list() -> None:
    assert TERMS.version == IdentityTerms.builtin().version
    assert TERMS.version.startswith("identity-terms-")
    assert IdentityTerms.builtin(extra={"martian": "person"}).version != TERMS.version
    with pytest.raises(ValueError):
        IdentityTerms({})


# ---- evaluate ------------------------------------------------------------------------------------------


def test_evaluate_softens_a_block_when_the_neutral_score_is_below_the_block_threshold() -> None:
    neutral = NeutralScores({"identity_attack": 0.2}, ("muslims",), "v1")
    verdict = evaluate(DEFAULT, scores={"identity_attack": 0.9}, spans=[], text="t", neutral=neutral)
    assert verdict.action is Action.HOLD
    rule, why = verdict.reasons
    assert (rule.category, rule.action, rule.score, rule.threshold) == (
        "identity_attack",
        Action.HOLD,
        0.9,
        0.8,
    )
    assert (why.category, why.action, why.score, why.threshold) == ("identity_check", Action.HOLD, 0.2, 0.8)
    assert verdict.identity_checks == (
        IdentityCheck("identity_attack", 0.9, 0.2, 0.8, ("muslims",), True, "v1"),
    )


def test_evaluate_neutral_score_at_the_threshold_still_blocks() -> None:
    neutral = NeutralScores({"identity_attack": 0.8}, ("gay",))
    verdict = evaluate(DEFAULT, scores={"identity_attack": 0.9}, spans=[], text="t", neutral=neutral)
    assert verdict.action is Action.BLOCK
    assert [r.category for r in verdict.reasons] == ["identity_attack"]
    assert verdict.identity_checks[0].softened is False


def test_evaluate_hold_is_checked_but_never_released() -> None:
    neutral = NeutralScores({"identity_attack": 0.0}, ("gay",))
    verdict = evaluate(DEFAULT, scores={"identity_attack": 0.6}, spans=[], text="t", neutral=neutral)
    assert verdict.action is Action.HOLD
    assert verdict.identity_checks == (IdentityCheck("identity_attack", 0.6, 0.0, 0.5, ("gay",), False),)
    # a rule that did not fire is not checked, whatever the neutral score
    quiet = evaluate(DEFAULT, scores={"identity_attack": 0.1}, spans=[], text="t", neutral=neutral)
    assert quiet.action is Action.RELEASE and quiet.identity_checks == ()


def test_categories_to_check_under_any_policy() -> None:
    scores = {"identity_attack": 0.4, "toxicity": 0.6, "threat": 0.9}
    assert categories_to_check([DEFAULT], scores, ["identity_attack", "toxicity"]) == []
    assert categories_to_check([DEFAULT, STRICT], scores, ["identity_attack", "toxicity"]) == [
        "identity_attack",
        "toxicity",
    ]


# ---- the moderator: the crafted case -------------------------------------------------------------------


def test_block_caused_by_an_identity_term_becomes_a_hold() -> None:
    scorer = biased("muslim", "muslims")
    [decision] = make(scorer).moderate(["Muslims are welcome here"])
    assert scorer.calls == [["Muslims are welcome here"], ["People are welcome here"]]
    assert decision.action is Action.HOLD and not decision.releasable
    assert decision.text == decision.original_text == "Muslims are welcome here"
    assert decision.scores == {"identity_attack": 0.95}  # the live scores are the original text's
    assert decision.identity_checks == (
        IdentityCheck("identity_attack", 0.95, 0.1, 0.8, ("muslims",), True, TERMS.version),
    )
    rule, why = decision.reasons
    assert (rule.category, rule.action, rule.threshold, rule.scorer) == (
        "identity_attack",
        Action.HOLD,
        0.8,
        "biased",
    )
    assert (why.category, why.action, why.score) == ("identity_check", Action.HOLD, 0.1)
    assert "0.95" in why.excerpt and "0.10" in why.excerpt and "muslims" in why.excerpt
    # the control: without the check the same text is blocked
    [unchecked] = make(biased("muslim", "muslims"), check=False).moderate(["Muslims are welcome here"])
    assert unchecked.action is Action.BLOCK and unchecked.identity_checks == ()


def test_attack_that_survives_the_neutral_text_stays_blocked() -> None:
    [decision] = make(biased("muslim", "scum")).moderate(["muslim scum"])
    assert decision.action is Action.BLOCK
    assert decision.identity_checks == (
        IdentityCheck("identity_attack", 0.95, 0.95, 0.8, ("muslim",), False, TERMS.version),
    )
    assert "identity_check" not in {r.category for r in decision.reasons}


def test_another_blocking_rule_keeps_the_block() -> None:
    scorers = (biased("gay"), KeywordScorer({"threat": ["kill"]}, name="threats"))
    [decision] = make(*scorers).moderate(["I will kill the gay"])
    assert decision.action is Action.BLOCK
    assert decision.identity_checks[0].softened
    assert [(r.category, r.action) for r in decision.reasons] == [
        ("threat", Action.BLOCK),
        ("identity_attack", Action.HOLD),
        ("identity_check", Action.HOLD),
    ]


def test_toxicity_hold_is_checked_and_stays_held() -> None:
    [decision] = make(biased("gay", category="toxicity")).moderate(["so gay"])
    assert decision.action is Action.HOLD  # default holds toxicity at 0.8 and never blocks it
    assert decision.identity_checks == (
        IdentityCheck("toxicity", 0.95, 0.1, 0.8, ("gay",), False, TERMS.version),
    )


def test_only_the_needed_texts_and_scorers_are_rescored() -> None:
    attack = biased("jews", "jewish")
    other = KeywordScorer({"insult": ["idiot"]}, name="other")
    texts = ["a nice day", "jewish food is great", "you idiot", "jews and friends", "jewish"]
    decisions = make(attack, other).moderate(texts)
    assert attack.calls == [texts, ["person food is great", "people and friends", "person"]]
    assert other.calls == [texts]  # it produced no checked category
    assert [d.action for d in decisions] == [
        Action.RELEASE,
        Action.HOLD,
        Action.HOLD,
        Action.HOLD,
        Action.HOLD,
    ]
    assert [len(d.identity_checks) for d in decisions] == [0, 1, 0, 1, 1]


def test_no_identity_term_means_no_rescoring() -> None:
    scorer = KeywordScorer({"identity_attack": ["vermin"]}, hit=0.95, miss=0.1)
    [decision] = make(scorer).moderate(["they are vermin"])
    assert decision.action is Action.BLOCK and decision.identity_checks == ()
    assert len(scorer.calls) == 1


def test_neutral_score_is_the_max_over_the_scorers_that_produced_the_category() -> None:
    first = biased("muslims", name="first")
    second = KeywordScorer({"identity_attack": ["never-matches"]}, name="second", miss=0.3)
    [decision] = make(first, second).moderate(["muslims"])
    assert second.calls == [["muslims"], ["people"]]
    assert decision.identity_checks[0].neutral_score == 0.3
    assert decision.action is Action.HOLD


def test_categories_are_configurable() -> None:
    scorer = biased("muslims")
    moderator = Moderator(
        [scorer],
        PRESETS,
        default_policy="default",
        masker=Masker(),
        identity_check=IdentityCheckSettings(categories=("toxicity",)),
    )
    [decision] = moderator.moderate(["muslims"])
    assert decision.action is Action.BLOCK and len(scorer.calls) == 1


def test_masked_input_scorers_get_the_neutral_text_masked(profanity: ProfanityScorer) -> None:
    later = biased("gay", name="later")
    [decision] = make(profanity, masked=[later]).moderate(["gay fucking idiots"])
    # "gay" -> "person" shifts the offsets by 3; the mask still lands on the swear word
    assert later.calls == [["gay f****** idiots"], ["person f****** idiots"]]
    assert decision.action is Action.HOLD and decision.identity_checks[0].softened


# ---- streaming ---------------------------------------------------------------------------------------


def test_stream_stopped_by_an_identity_block_finishes_held() -> None:
    stream = make(biased("muslims")).stream()
    sent = "".join(stream.feed(d) for d in ["Muslims ", "are ", "welcome ", "here ", "today"])
    assert sent == "" and stream.stopped
    rest, decision = stream.finish()
    assert rest == "" and decision.action is Action.HOLD
    assert decision.identity_checks and all(c.softened for c in decision.identity_checks)


def test_stream_finish_runs_the_check() -> None:
    for check, expected in ((True, Action.HOLD), (False, Action.BLOCK)):
        stream = make(biased("muslims"), check=check).stream()
        assert stream.feed("muslims") == ""  # no whitespace yet: only finish() scores it
        rest, decision = stream.finish()
        assert rest == "" and decision.action is expected
        assert len(decision.identity_checks) == (1 if check else 0)


class ContextScorer:
    """Scores "gay" as an attack until the word "parade" follows: a prefix can look worse than the whole."""

    name = "context"
    version = "context-1"

    def score(self, texts):
        return [
            ScoreResult({"identity_attack": 0.95 if "gay" in t and "parade" not in t else 0.1}) for t in texts
        ]


def test_stream_whose_prefix_was_softened_never_finishes_released() -> None:
    [whole] = make(ContextScorer()).moderate(["gay pride parade"])
    assert whole.action is Action.RELEASE  # the whole text alone would be released
    stream = make(ContextScorer()).stream()
    assert stream.feed("gay ") == "" and stream.feed("pride ") == ""
    assert stream.stopped
    stream.feed("parade")
    rest, decision = stream.finish()
    assert rest == "" and decision.action is Action.HOLD  # softened by the check, not blocked
    assert [c.softened for c in decision.identity_checks] == [True]
    assert "identity_check" in {r.category for r in decision.reasons}


class NanOnNeutral:
    """Scores the original text 0.2 and the neutralised one NaN (a model that breaks on the substitute)."""

    name = "flaky"
    version = "1"

    def score(self, texts: Sequence[str]) -> list[ScoreResult]:
        return [
            ScoreResult({"identity_attack": float("nan") if "people" in t.lower() else 0.2}) for t in texts
        ]


@pytest.mark.parametrize("nan_first", [True, False])
def test_a_non_finite_neutral_score_keeps_the_block_and_is_not_recorded(nan_first: bool) -> None:
    """The NaN from one scorer must neither be outvoted by another scorer's low neutral score (which
    softened the block when the NaN came first) nor end up in the stored decision (JSON has no NaN)."""
    scorers = (NanOnNeutral(), biased("muslims")) if nan_first else (biased("muslims"), NanOnNeutral())
    [decision] = make(*scorers).moderate(["Muslims are welcome here"])
    assert decision.action is Action.BLOCK
    assert decision.identity_checks == ()
    json.dumps(record_decision(decision), allow_nan=False)
