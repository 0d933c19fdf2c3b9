from __future__ import annotations

import pytest

from moderation.masking import Masker
from moderation.scorers.profanity import ProfanityScorer


def flagged(scorer: ProfanityScorer, text: str) -> list[str]:
    return [text[s.start : s.end] for s in scorer.find_spans(text)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("What the FUCK", ["FUCK"]),
        ("f*ck this", ["f*ck"]),
        ("f**k this", ["f**k"]),
        ("sh1t happens", ["sh1t"]),
        ("$hit happens", ["$hit"]),
        ("what an a$$", ["a$$"]),
        ("what an @ss", ["@ss"]),
        ("fuuuuuck", ["fuuuuuck"]),
        ("fuk that", ["fuk"]),
        ("fvck that", ["fvck"]),
        ("phuck that", ["phuck"]),
        ("f u c k you", ["f u c k"]),
        ("the f.u.c.k is that", ["f.u.c.k"]),
        ("f-u-c-k", ["f-u-c-k"]),
        ("F_U_C_K", ["F_U_C_K"]),
        ("a f u c k i n g mess", ["f u c k i n g"]),
        ("motherfucker", ["motherfucker"]),
        ("clusterfuck", ["clusterfuck"]),
        ("fucking great", ["fucking"]),
        ("you son of a bitch", ["son of a bitch"]),
        ("bull-shit, said he", ["shit"]),
    ],
)
def test_finds_profanity_in_its_spellings(profanity: ProfanityScorer, text: str, expected: list[str]) -> None:
    assert flagged(profanity, text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Scunthorpe United won",
        "the assessment was fair",
        "the cockpit of a plane",
        "a classic class",
        "Dickens wrote novels",
        "shiitake mushrooms",
        "I love shitake mushrooms",  # allow-list (an accepted spelling of shiitake)
        "kill the process and pass the test",
        "Moby Dick is a novel",  # allow-list
        "Dick Van Dyke sang",  # allow-list, phrase after the word
        "she cocked her head",
        "cock his head to one side",  # allow-list
        "a cocker spaniel",
        "the Samsung A55 phone",  # digits as many as letters: not "ass"
        "c l a s s",  # spaced-out innocent word containing "a s s"
        "a s s e s s m e n t",
        "passes, masses and glasses",
        "f***, a** and s***",  # already masked: re-moderating masked text must not flag it again
    ],
)
def test_innocent_texts_are_not_flagged(profanity: ProfanityScorer, text: str) -> None:
    assert flagged(profanity, text) == []


def test_scores_and_spans(profanity: ProfanityScorer) -> None:
    clean, dirty = profanity.score(["all good here", "oh shit, and fuck"])
    assert clean.scores == {"profanity": 0.0} and clean.spans == ()
    assert dirty.scores == {"profanity": 1.0}
    assert [(s.start, s.end, s.category, s.scorer) for s in dirty.spans] == [
        (3, 7, "profanity", "profanity"),
        (13, 17, "profanity", "profanity"),
    ]


def test_word_list_and_allow_list_are_extendable() -> None:
    base = ProfanityScorer()
    extended = ProfanityScorer(extra_words=["frak*", "gorram"], extra_allow=["fucking great"])
    text = "frakking gorram ship, fucking great"
    assert flagged(base, text) == ["fucking"]
    assert flagged(extended, text) == ["frakking", "gorram"]
    assert base.version != extended.version


def test_word_files(tmp_path) -> None:
    words = tmp_path / "words.txt"
    words.write_text("# my list\nsmeg*\n\nbelgium  # a phrase-less entry\n", encoding="utf-8")
    allow = tmp_path / "allow.txt"
    allow.write_text("belgium is a country\n", encoding="utf-8")
    scorer = ProfanityScorer(builtin_words=False, word_files=[words], allow_files=[allow])
    assert flagged(scorer, "smeghead! Belgium! belgium is a country. shit") == ["smeghead", "Belgium"]


def test_version_is_stable_across_instances() -> None:
    assert ProfanityScorer().version == ProfanityScorer().version


def test_stream_context_covers_phrases() -> None:
    assert ProfanityScorer(builtin_allow=False, builtin_words=False).stream_context_words == 0
    # "Dick Van Dyke" (allow-list) needs two more words after "Dick" before "Dick" is final.
    assert ProfanityScorer().stream_context_words >= 2


@pytest.mark.parametrize("style", ["keep_first", "full"])
def test_masked_output_is_clean_on_a_second_pass(profanity: ProfanityScorer, style: str) -> None:
    text = "f u c k this sh1t, you a$$hole motherfucker, f*ck"
    masked = Masker(style=style).mask(text, profanity.find_spans(text))
    assert masked != text
    assert profanity.find_spans(masked) == ()


def test_unicode_around_matches(profanity: ProfanityScorer) -> None:
    text = "日本語 fuck 😀 — shit"
    assert flagged(profanity, text) == ["fuck", "shit"]
    assert flagged(profanity, "Naïve shit, ça va") == ["shit"]
