"""Replay: a recorded decision compared with the same text moderated again."""

from __future__ import annotations

import copy
import dataclasses
import enum
import json

import pytest

from moderation.identity import IdentityCheckSettings
from moderation.masking import Masker
from moderation.moderator import Moderator
from moderation.policy import PRESETS, Policy, Thresholds
from moderation.replay import compare_decisions, record_decision
from moderation.scorers.profanity import ProfanityScorer
from moderation.testing import KeywordScorer
from moderation.types import Action, Decision


def make(profanity: ProfanityScorer, *, policies=PRESETS, hit: float = 0.95) -> Moderator:
    return Moderator(
        [profanity, KeywordScorer({"identity_attack": ["muslims", "scum"]}, name="kw", hit=hit, miss=0.1)],
        policies,
        default_policy="default",
        masker=Masker(),
        identity_check=IdentityCheckSettings(),
        shadow_policies=["strict"],
    )


def gateway_record(d: Decision) -> dict:
    """The shape the gateway stores (gateway/pipeline/recording.py), written out by hand, not by
    record_decision."""
    return {
        "action": d.action.name.lower(),
        "scores": dict(d.scores),
        "reasons": [
            {
                "category": r.category,
                "score": r.score,
                "threshold": r.threshold,
                "action": r.action.name.lower(),
                "scorer": r.scorer,
                "excerpt": r.excerpt,
            }
            for r in d.reasons
        ],
        "policy_name": d.policy_name,
        "policy_version": d.policy_version,
        "scorers": [{"name": s.name, "version": s.version} for s in d.scorers],
    }


TEXTS = ["a nice day", "oh shit, muslims are here", "muslim scum", "muslims and shit and fuck"]


@pytest.mark.parametrize("text", TEXTS)
def test_same_text_same_configuration_is_identical(profanity: ProfanityScorer, text: str) -> None:
    [original] = make(profanity).moderate([text])
    [again] = make(profanity).moderate([text])
    assert compare_decisions(gateway_record(original), again) == []
    stored = json.loads(json.dumps(record_decision(original)))  # through JSON, as a database would
    assert compare_decisions(stored, again) == []


def test_reason_order_is_not_a_difference(profanity: ProfanityScorer) -> None:
    [d] = make(profanity).moderate(["muslims and shit and fuck"])
    record = gateway_record(d)
    assert len(record["reasons"]) >= 3
    record["reasons"].reverse()
    assert compare_decisions(record, d) == []


def test_action_and_softening_changes_are_listed(profanity: ProfanityScorer) -> None:
    [held] = make(profanity).moderate(["muslims are here"])
    assert held.action is Action.HOLD
    blocked = dataclasses.replace(held, action=Action.BLOCK)
    record = gateway_record(blocked)
    record["reasons"] = [r for r in record["reasons"] if r["category"] != "identity_check"]
    record["reasons"][0]["action"] = "block"
    assert compare_decisions(record, held) == [
        "action: recorded block, replayed hold",
        "reason identity_attack (kw): action recorded block, replayed hold",
        "reason identity_check (kw): replay only (action hold, score 0.1000, threshold 0.8000)",
    ]


def test_score_tolerance(profanity: ProfanityScorer) -> None:
    [d] = make(profanity).moderate(["muslim scum"])
    record = gateway_record(d)
    record["scores"]["identity_attack"] += 0.00005
    record["reasons"][0]["score"] += 0.00005
    assert compare_decisions(record, d) == []  # within the default 1e-4
    [diff] = compare_decisions(record, d, tolerance=1e-6)[:1]
    assert (
        diff == "score identity_attack: recorded 0.9500, replayed 0.9500 (difference 5e-05, tolerance 1e-06)"
    )
    record["scores"]["identity_attack"] = 0.5
    record["scores"]["threat"] = 0.2
    del record["scores"]["profanity"]
    assert compare_decisions(record, d) == [
        "score identity_attack: recorded 0.5000, replayed 0.9500 (difference 0.45, tolerance 0.0001)",
        "score profanity: replayed 0.0000, not recorded",
        "score threat: recorded 0.2000, missing from the replay",
    ]


def test_policy_and_scorer_versions(profanity: ProfanityScorer) -> None:
    [d] = make(profanity).moderate(["a nice day"])
    record = gateway_record(d)
    record["policy_version"] = "0123456789ab"
    record["scorers"][1]["version"] = "keyword-old"
    record["scorers"].append({"name": "detoxify", "version": "detoxify-unbiased-x"})
    assert compare_decisions(record, d) == [
        f"policy_version: recorded '0123456789ab', replayed {d.policy_version!r}",
        "scorer detoxify: recorded (version detoxify-unbiased-x), not in the replay",
        f"scorer kw: recorded version keyword-old, replayed {d.scorers[1].version}",
    ]


def test_changed_thresholds_show_up(profanity: ProfanityScorer) -> None:
    [before] = make(profanity).moderate(["muslim scum"])
    looser = dict(PRESETS)
    looser["default"] = Policy("default", thresholds={"identity_attack": Thresholds(hold=0.5, block=0.99)})
    [after] = make(profanity, policies=looser).moderate(["muslim scum"])
    diffs = compare_decisions(gateway_record(before), after)
    assert diffs[0].startswith("policy_version: recorded")
    assert "action: recorded block, replayed hold" in diffs
    assert "reason identity_attack (kw): action recorded block, replayed hold; threshold recorded 0.8000, " \
        "replayed 0.5000" in diffs  # fmt: skip


def test_span_reasons_pair_by_excerpt_without_quoting_it(profanity: ProfanityScorer) -> None:
    [d] = make(profanity).moderate(["oh shit and fuck"])
    record = gateway_record(d)
    record["reasons"][0]["excerpt"] = "secret words"
    diffs = compare_decisions(record, d)
    assert diffs == ["reason profanity (profanity): excerpt differs"]
    assert all("secret" not in line and "shit" not in line for line in diffs)


def test_masked_text_and_identity_checks_when_recorded(profanity: ProfanityScorer) -> None:
    [masked] = make(profanity).moderate(["oh shit"])
    record = record_decision(masked)
    record["masked_text"] = "oh s**t!"
    assert compare_decisions(record, masked) == ["masked text differs"]
    [held] = make(profanity).moderate(["muslims are here"])
    record = record_decision(held)
    [again] = make(profanity, hit=0.85).moderate(["muslims are here"])
    diffs = compare_decisions(record, again)
    assert "identity check identity_attack: original_score recorded 0.95, replayed 0.8500" in diffs
    record["identity_checks"][0]["terms_version"] = "identity-terms-old"
    assert "identity check identity_attack: terms_version recorded 'identity-terms-old', replayed " + repr(
        held.identity_checks[0].terms_version
    ) in compare_decisions(record, held)


def test_an_incomplete_record_is_never_identical(profanity: ProfanityScorer) -> None:
    [d] = make(profanity).moderate(["a nice day"])
    record = gateway_record(d)
    del record["scorers"]
    assert compare_decisions(record, d) == ["the record has no scorers"]
    assert len(compare_decisions({}, d)) == 6


def test_action_spellings(profanity: ProfanityScorer) -> None:
    class Stored(enum.StrEnum):  # like the gateway's storage enum
        HOLD = "hold"

    [d] = make(profanity).moderate(["muslims are here"])
    for spelling in ("hold", "HOLD", "held", Action.HOLD, int(Action.HOLD), Stored.HOLD):
        record = copy.deepcopy(gateway_record(d))
        record["action"] = spelling
        assert compare_decisions(record, d) == []
