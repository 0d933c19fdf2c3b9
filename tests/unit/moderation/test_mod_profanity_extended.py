"""`ProfanityScorer.extended` and `Moderator.with_scorers`: runtime word lists added to a configured
scorer without touching it, named in the version so that a decision says which list versions it used."""

from __future__ import annotations

from moderation.masking import Masker
from moderation.moderator import Moderator
from moderation.policy import PRESETS
from moderation.scorers.profanity import ProfanityScorer, list_refs
from moderation.testing import KeywordScorer
from moderation.types import Action


def test_extended_adds_entries_and_names_the_lists_without_changing_the_base() -> None:
    base = ProfanityScorer()
    more = base.extended(words=["Zorblax", "flim*"], refs=[(7, 1), (3, 2)])
    assert base.find_spans("a zorblax flimflam") == ()
    assert [s.end - s.start for s in more.find_spans("a zorblax flimflam")] == [7, 8]
    assert more.version.startswith("wordlist-2-") and more.version.endswith("+lists-3.2,7.1")
    assert more.version.split("+")[0] != base.version
    assert list_refs(more.version) == ((3, 2), (7, 1)) and list_refs(base.version) == ()
    assert more.list_refs == ((3, 2), (7, 1))


def test_an_allow_entry_unlists_a_built_in_word() -> None:
    base = ProfanityScorer()
    assert base.find_spans("oh shit")
    assert base.extended(allow=["shit"], refs=[(1, 1)]).find_spans("oh shit") == ()


def test_same_entries_same_version() -> None:
    a = ProfanityScorer().extended(words=["zorblax"], refs=[(1, 1)])
    b = ProfanityScorer().extended(words=["ZORBLAX "], refs=[(1, 1)])
    assert a.version == b.version


def test_with_scorers_replaces_only_what_it_is_told() -> None:
    keyword = KeywordScorer({"toxicity": ["idiot"]}, name="kw")
    base = Moderator([ProfanityScorer(), keyword], dict(PRESETS), default_policy="default", masker=Masker())
    extended = base.with_scorers(
        lambda s: s.extended(words=["zorblax"], refs=[(1, 1)]) if isinstance(s, ProfanityScorer) else s
    )
    assert extended.scorers[1] is keyword
    (decision,) = extended.moderate(["the zorblax is here"])
    (before,) = base.moderate(["the zorblax is here"])
    assert decision.action is Action.MASK and "zorblax" not in decision.text
    assert "zorblax" in before.text
    assert decision.scorers[0].version.endswith("+lists-1.1")


def test_extended_finds_what_one_scorer_with_the_same_extra_words_finds() -> None:
    """The extended scorer shares the configured matcher and adds one for its extra words (cheap to build
    per tenant); its spans are those of a scorer configured with the same words."""
    extra = ["zorblax", "zorb*", "shit storm", "*blax", "Moby Dick"]
    extended = ProfanityScorer().extended(words=extra, refs=[(1, 1)])
    configured = ProfanityScorer(extra_words=extra)
    texts = [
        "a zorblax in a shit storm",
        "zorbs and zorblaxes, the bigzorblax",
        "s h i t storm over z0rblax",
        "Moby Dick is a dick of a zorblax",
        "f.u.c.k the zorb-lax",
        "nothing here at all",
    ]
    for text in texts:
        assert extended.find_spans(text) == configured.find_spans(text), text
    assert set(extended.words) == set(configured.words)
