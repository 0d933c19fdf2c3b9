from __future__ import annotations

import itertools
import re
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from moderation.masking import Masker
from moderation.moderator import Moderator
from moderation.policy import PRESETS
from moderation.scorers.profanity import ProfanityScorer
from moderation.streaming import StreamModerator, StreamSettings, release_point
from moderation.testing import KeywordScorer
from moderation.types import Action, ScoreResult, Span


def moderator(*scorers, style: str = "keep_first", right: int = 2, every: int = 1) -> Moderator:
    return Moderator(
        list(scorers),
        PRESETS,
        default_policy="default",
        masker=Masker(style=style),
        stream_settings=StreamSettings(right_context_words=right, min_release_words=every),
    )


def run(stream: StreamModerator, deltas: Sequence[str]) -> tuple[list[str], str, object]:
    out = [stream.feed(d) for d in deltas]
    rest, decision = stream.finish()
    return out, rest, decision


def test_split_word_is_never_released_unmasked(profanity: ProfanityScorer) -> None:
    stream = moderator(profanity).stream()
    out, rest, decision = run(stream, ["oh f", "uck ", "this ", "is ", "fine ", "really"])
    assert "fuck" not in "".join(out)
    assert decision.action is Action.MASK
    assert "".join(out) + rest == decision.text == "oh f*** this is fine really"


@pytest.mark.parametrize("style", ["keep_first", "full"])
def test_spaced_word_arriving_letter_by_letter(profanity: ProfanityScorer, style: str) -> None:
    text = "well what the f u c k is going on here today"
    stream = moderator(profanity, style=style).stream()
    sent = ""
    for ch in text:
        sent += stream.feed(ch)
        # whatever was sent so far is exactly the start of the final masked text
        assert not re.search(r"f u c|u c k", sent)
        assert "f u" not in sent if style == "full" else True
    rest, decision = stream.finish()
    assert decision.action is Action.MASK
    assert sent + rest == decision.text
    assert ("f * * *" if style == "keep_first" else "* * * *") in decision.text


def test_nothing_is_released_before_it_is_scored_with_right_context() -> None:
    recorder = KeywordScorer({"toxicity": ["zzz"]}, name="rec")
    stream = moderator(recorder, right=2).stream()
    words = ["the", "quick", "brown", "fox", "jumps", "over", "the", "lazy", "dog", "and", "runs", "away"]
    sent = 0
    for word in words:
        for piece in (word[:2], word[2:] + " "):
            chunk = stream.feed(piece)
            if chunk:
                scored = recorder.calls[-1][0]  # the text scored right before this release
                assert scored[sent : sent + len(chunk)] == chunk
                assert len(scored[sent + len(chunk) :].split()) >= 2  # scored with 2 words after it
                sent += len(chunk)
    assert sent > 0
    rest, decision = stream.finish()
    assert sent + len(rest) == len(decision.text)


def test_stop_on_hold_and_never_release_again() -> None:
    kw = KeywordScorer({"threat": ["kill"]})
    stream = moderator(ProfanityScorer(), kw).stream()
    out = [
        stream.feed(d) for d in ["one two three four ", "five six ", "I will kill ", "you ", "now ", "ok ok "]
    ]
    assert stream.stopped
    assert all(o == "" for o in out[2:])
    assert "kill" not in "".join(out)
    rest, decision = stream.finish()
    assert rest == "" and decision.action is Action.BLOCK
    assert decision.text == decision.original_text  # kept for the audit, not to be sent


def test_partial_word_does_not_stop_a_strict_stream(profanity: ProfanityScorer) -> None:
    strict_words = Moderator(
        [profanity],
        {"nomask": PRESETS["default"].__class__(name="nomask", span_actions={"profanity": Action.HOLD})},
        default_policy="nomask",
        masker=Masker(),
    )
    stream = strict_words.stream()
    out, rest, decision = run(stream, ["the ass", "essment ", "was ", "fair ", "enough"])
    assert not stream.stopped and decision.action is Action.RELEASE
    assert "".join(out) + rest == "the assessment was fair enough"
    stream = strict_words.stream()
    out, rest, decision = run(stream, ["the ass ", "was ", "grumpy"])
    assert stream.stopped and rest == "" and decision.action is Action.HOLD
    assert "ass" not in "".join(out)


class KillUnlessProcess:
    """Non-monotonic on purpose: "kill the" is a threat until "process" follows."""

    name = "kup"
    version = "1"

    def score(self, texts: Sequence[str]) -> list[ScoreResult]:
        return [ScoreResult({"threat": 1.0 if "kill" in t and "process" not in t else 0.0}) for t in texts]


def test_a_stopped_stream_never_ends_releasable() -> None:
    stream = moderator(KillUnlessProcess()).stream()
    _out, rest, decision = run(stream, ["please ", "kill ", "the ", "old ", "process ", "now"])
    assert stream.stopped and rest == ""
    assert decision.action is Action.BLOCK  # the whole text alone would be released: escalated
    assert decision.text == decision.original_text


class LateSpan:
    """Breaks the streaming contract: flags the first word only once the text is long."""

    name = "late"
    version = "1"

    def score(self, texts: Sequence[str]) -> list[ScoreResult]:
        return [
            ScoreResult({"x": 0.0}, (Span(0, 4, "profanity", "late"),) if len(t) > 30 else ()) for t in texts
        ]


def test_inconsistent_scorer_is_caught_and_held() -> None:
    stream = moderator(LateSpan()).stream()
    out, rest, decision = run(stream, ["word ", "one ", "two ", "three ", "four ", "five ", "six ", "seven"])
    assert "".join(out).startswith("word")  # sent unmasked while the scorer still said nothing
    assert rest == "" and decision.action is Action.HOLD
    assert decision.reasons[0].category == "stream_consistency"


def test_min_release_words_batches_scoring() -> None:
    every = KeywordScorer({"toxicity": ["zzz"]}, name="a")
    batched = KeywordScorer({"toxicity": ["zzz"]}, name="b")
    deltas = [f"w{i} " for i in range(12)]
    run(moderator(every, every=1).stream(), deltas)
    run(moderator(batched, every=4).stream(), deltas)
    assert len(batched.calls) < len(every.calls) / 2


def test_text_without_spaces_waits_for_finish(profanity: ProfanityScorer) -> None:
    stream = moderator(profanity).stream()
    out, rest, decision = run(stream, ["日本語の", "テキスト", "です"])
    assert out == ["", "", ""] and rest == decision.text == "日本語のテキストです"


def test_protocol_errors(profanity: ProfanityScorer) -> None:
    stream = moderator(profanity).stream()
    stream.feed("a b c d ")
    stream.finish()
    with pytest.raises(RuntimeError):
        stream.feed("more")
    with pytest.raises(RuntimeError):
        stream.finish()


def test_release_point_rules() -> None:
    text = "alpha beta gamma delta "
    assert text[: release_point(text, (), context_words=2)] == "alpha beta "
    assert text[: release_point(text, (), context_words=0)] == text
    assert release_point(text, (), context_words=4) == 0
    spaced = "alpha beta f u c "
    assert spaced[: release_point(spaced, (), context_words=0)] == "alpha beta "
    straddle = "alpha beta gamma delta "
    assert straddle[: release_point(straddle, (Span(6, 20, "p", "s"),), context_words=1)] == "alpha "


VOCAB = [
    "the",
    "a",
    "I",
    "class",
    "assessment",
    "Scunthorpe",
    "shiitake",
    "Dick",
    "Van",
    "Dyke",
    "Moby",
    "fuck",
    "f*ck",
    "sh1t",
    "a$$",
    "f",
    "u",
    "c",
    "k",
    "s",
    "h",
    "i",
    "t",
    "son",
    "of",
    "bitch",
    "fucking",
    "great",
    "game",
    "f.u.c.k",
    "cockpit",
    "cock",
    "his",
    "head",
    "😀",
    "naïve",
    "—",
    ",",
    ".",
    # Unicode disguises (moderation/folding.py): invisible characters, full-width, marks, look-alikes
    "f\u200b",
    "\u200b",
    "\u00ad",
    "\uff46",
    "u\u0301",
    "fu\N{CYRILLIC SMALL LETTER ES}k",
    "\N{CYRILLIC SMALL LETTER DZE}h\N{CYRILLIC SMALL LETTER BYELORUSSIAN-UKRAINIAN I}t",
    "f\u200bu\u200bck",
]


@settings(max_examples=150, deadline=None)
@given(
    words=st.lists(st.sampled_from(VOCAB), min_size=1, max_size=25),
    seps=st.lists(st.sampled_from([" ", " ", "  ", "\n"]), min_size=25, max_size=25),
    cuts=st.lists(st.integers(0, 200), max_size=12),
    style=st.sampled_from(["keep_first", "full"]),
    right=st.integers(0, 3),
)
def test_stream_equals_batch(words, seps, cuts, style, right) -> None:
    scorer = ProfanityScorer()
    mod = moderator(scorer, style=style, right=right)
    text = "".join(w + s for w, s in zip(words, seps, strict=False))
    bounds = sorted({c for c in cuts if c < len(text)} | {0, len(text)})
    deltas = [text[a:b] for a, b in itertools.pairwise(bounds)]
    stream = mod.stream()
    sent = ""
    for d in deltas:
        sent += stream.feed(d)
    rest, decision = stream.finish()
    [batch] = mod.moderate([text])
    assert not stream.stopped
    assert decision.action is batch.action and decision.text == batch.text
    assert sent + rest == batch.text


FULL_WIDTH = {c: c + 0xFEE0 for c in range(ord("!"), ord("~") + 1)}  # "a" -> U+FF41 and so on


@pytest.mark.parametrize(
    "text",
    [
        "you m\u200b o t h e r f u c k e r is going on here today",  # an invisible character after "m"
        "oh f\u0301 u c k i n g hell it is today",  # a combining mark on the first letter
        "so the f\u200bu\u200bc\u200bk is this thing then",
        "what the " + "fucking".translate(FULL_WIDTH) + " hell is this then",
    ],
)
def test_a_disguised_word_streams_like_the_plain_one(profanity: ProfanityScorer, text: str) -> None:
    """A letter with an invisible character attached is still one letter of a spaced-out word: counted
    as two, it let the stream send "m\\u200b " before the rest of the word arrived (held at the end)."""
    stream = moderator(profanity, right=0).stream()
    sent = "".join(stream.feed(ch) for ch in text)
    rest, decision = stream.finish()
    assert decision.action is Action.MASK, decision.reasons
    assert sent + rest == decision.text == Masker().mask(text, profanity.find_spans(text))
