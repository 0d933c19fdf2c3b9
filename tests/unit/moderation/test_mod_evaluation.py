from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

from moderation.evaluation import evaluate_file, format_report, read_labelled
from moderation.masking import Masker
from moderation.moderator import Moderator
from moderation.policy import PRESETS
from moderation.scorers.profanity import ProfanityScorer
from moderation.testing import KeywordScorer

SHIPPED = Path(str(resources.files("moderation").joinpath("data", "labelled_eval.csv")))


def test_shipped_set_is_balanced_enough() -> None:
    examples = read_labelled(SHIPPED)
    assert 80 <= len(examples) <= 150
    kinds = {e.kind for e in examples}
    assert {"clean", "tricky_clean", "profane", "obfuscated", "unicode", "insult", "threat"} <= kinds
    # the Unicode evasions are what they claim (an editor that normalised the file would quietly undo them)
    unicode_rows = [e.text for e in examples if e.kind == "unicode"]
    assert len(unicode_rows) >= 8 and not any(text.isascii() for text in unicode_rows)
    assert 0.3 < sum(e.label for e in examples) / len(examples) < 0.7
    assert all(e.label == 0 for e in examples if e.kind in ("clean", "tricky_clean"))


def test_word_filter_precision_and_recall_on_the_shipped_set(profanity: ProfanityScorer) -> None:
    moderator = Moderator([profanity], PRESETS, default_policy="default", masker=Masker())
    report = evaluate_file(moderator, SHIPPED)
    assert report.total == len(read_labelled(SHIPPED))
    assert report.precision >= 0.97  # innocent substrings (Scunthorpe, cockpit, shiitake...) are not hits
    assert report.by_kind["tricky_clean"].flagged <= 1
    assert report.by_kind["clean"].flagged == 0
    for kind in ("profane", "obfuscated", "unicode"):  # what a word list is for: near-complete recall
        assert report.by_kind[kind].flagged >= 0.95 * report.by_kind[kind].total
    # insults and threats without swear words are the toxicity model's job, not the word list's
    assert 0.5 <= report.recall < 0.9
    assert report.actions == {"mask": report.tp + report.fp, "release": report.fn + report.tn}


def test_offline_demo_flags_no_clean_text_on_the_shipped_set() -> None:
    """alt-profanity-check alone holds "Dick Van Dyke" and "pussy willow"; with the allow-list taken out
    of its input, the offline demo flags no clean or tricky clean text and keeps its insult recall."""
    pytest.importorskip("profanity_check")
    from moderation.config import build_moderator, offline_demo_config

    report = evaluate_file(build_moderator(offline_demo_config()), SHIPPED)
    assert report.by_kind["tricky_clean"].flagged == 0 and report.by_kind["clean"].flagged == 0
    assert report.by_kind["insult"].flagged >= 0.6 * report.by_kind["insult"].total
    assert report.by_kind["profane"].flagged == report.by_kind["profane"].total


def test_metrics_on_a_known_confusion_matrix(tmp_path) -> None:
    path = tmp_path / "set.csv"
    path.write_text(
        'text,label\nbad one,1\nbad two,1\n"bad, but fine",0\nclean,0\nsubtle,1\nclean again,0\n',
        encoding="utf-8",
    )
    moderator = Moderator(
        [KeywordScorer({"toxicity": ["bad"]})], PRESETS, default_policy="permissive", masker=Masker()
    )
    strict = evaluate_file(moderator, path, policy="default")  # default holds toxicity >= 0.8
    assert (strict.tp, strict.fp, strict.fn, strict.tn) == (2, 1, 1, 2)
    assert strict.precision == pytest.approx(2 / 3) and strict.recall == pytest.approx(2 / 3)
    assert strict.f1 == pytest.approx(2 / 3) and strict.accuracy == pytest.approx(4 / 6)
    assert {t for t, _, _ in strict.errors} == {"bad, but fine", "subtle"}
    lenient = evaluate_file(moderator, path)  # permissive has no toxicity rule
    assert (lenient.tp, lenient.fp, lenient.fn, lenient.tn) == (0, 0, 3, 3)
    assert lenient.precision == 0.0 and lenient.f1 == 0.0 and lenient.policy == "permissive"
    text = format_report(strict)
    assert "precision 0.667" in text and "bad, but fine" in text


@pytest.mark.parametrize(
    ("content", "message"),
    [("words,label\nx,1\n", "missing column"), ("text,label\nx,yes\n", r":2: label must be 0 or 1")],
)
def test_bad_files(tmp_path, content: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        read_labelled(path)
