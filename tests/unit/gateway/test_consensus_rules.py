"""The consensus rules on verdicts (no database) and the `[review.consensus]` table's checks."""

from __future__ import annotations

import pytest

from gateway.review.consensus import (
    Consensus,
    ConsensusConfigError,
    ConsensusRule,
    OutcomeKind,
    Vote,
    combine,
    parse_consensus,
)

A, R = Vote("approve"), Vote("reject")


def E(text: str) -> Vote:
    return Vote("edit", text)


def outcome(rule: str, votes: list[Vote], k: int | None = None) -> tuple[str, str | None, str | None]:
    got = combine(Consensus(verdicts=k or len(votes), rule=ConsensusRule(rule)), votes)
    return got.kind.value, got.decision, got.edited_text


@pytest.mark.parametrize(
    ("rule", "votes", "expected"),
    [
        ("unanimous", [A, A], ("decide", "approve", None)),
        ("unanimous", [R, R], ("decide", "reject", None)),
        ("unanimous", [A, R], ("escalate", None, None)),
        ("unanimous", [E("x"), E("x")], ("decide", "edit", "x")),
        ("unanimous", [E("x"), E("y")], ("escalate", None, None)),
        ("unanimous", [E("x"), A], ("escalate", None, None)),
        ("majority", [A, A, R], ("decide", "approve", None)),
        ("majority", [A, R, R], ("decide", "reject", None)),
        ("majority", [A, R], ("escalate", None, None)),  # a tie
        ("majority", [A, R, R, A], ("escalate", None, None)),
        ("majority", [E("x"), E("x"), R], ("decide", "edit", "x")),
        ("majority", [E("x"), A, R], ("escalate", None, None)),  # release, but which text?
        ("any-reject", [A, A, R], ("decide", "reject", None)),
        ("any-reject", [A, A], ("decide", "approve", None)),
        ("any-reject", [A, E("x")], ("escalate", None, None)),
    ],
)
def test_rules(rule: str, votes: list[Vote], expected: tuple[str, str | None, str | None]) -> None:
    assert outcome(rule, votes) == expected


def test_fewer_verdicts_than_asked_wait_whatever_they_say() -> None:
    assert outcome("any-reject", [R], k=2)[0] == OutcomeKind.WAIT.value
    assert outcome("unanimous", [A, R], k=3)[0] == OutcomeKind.WAIT.value


def test_summary_counts_without_text() -> None:
    got = combine(Consensus(verdicts=3, rule=ConsensusRule.MAJORITY), [E("secret"), A, R])
    counts = "majority, 3 of 3 verdicts: 1 approve, 1 edit, 1 reject"
    assert got.summary == f"the releasing verdicts differ on the text ({counts})"
    assert "secret" not in got.summary


def test_applies_to_actions_and_categories() -> None:
    wanted = parse_consensus({"p": {"verdicts": 2, "for_actions": ["block"], "for_categories": ["threat"]}})[
        "p"
    ]
    assert wanted.applies(action="block", categories=["insult", "threat"])
    assert not wanted.applies(action="block", categories=["insult"])
    assert not wanted.applies(action="hold", categories=["threat"])
    every = parse_consensus({"p": {"verdicts": 2}})["p"]
    assert every.rule is ConsensusRule.UNANIMOUS and every.applies(action="hold", categories=[])


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"p": {"verdicts": 0}}, r"p\.verdicts: a whole number from 1 to 9"),
        ({"p": {"verdicts": True}}, r"p\.verdicts: a whole number"),
        ({"p": {"verdicts": 2.0}}, r"p\.verdicts: a whole number"),
        ({"p": {"verdicts": 10}}, r"p\.verdicts: a whole number"),
        ({"p": {"verdicts": 2, "rule": "most"}}, r"p\.rule: one of unanimous, majority, any-reject"),
        ({"p": {"verdicts": 2, "for_actions": ["release"]}}, r"p\.for_actions: each one of hold, block"),
        ({"p": {"verdicts": 2, "for_actions": []}}, r"p\.for_actions: a non-empty list"),
        ({"p": {"verdicts": 2, "for_categories": "threat"}}, r"p\.for_categories: a non-empty list"),
        ({"p": {"rule": "majority"}}, "a table with verdicts"),
        ({"p": {"verdicts": 2, "quorum": 1}}, "a table with verdicts"),
        ([], "a table of policies"),
    ],
)
def test_malformed_tables_name_the_key(table: object, message: str) -> None:
    with pytest.raises(ConsensusConfigError, match=message):
        parse_consensus(table)


def test_the_settings_check_the_table_and_serve_refuses_an_unknown_policy() -> None:
    from gateway.config import Settings, SettingsError
    from gateway.server import StartupError, review_consensus
    from moderation.config import build_moderator, offline_demo_config

    with pytest.raises(SettingsError, match=r"review\.consensus\.strict\.rule: one of"):
        Settings(review={"consensus": {"strict": {"verdicts": 2, "rule": "most"}}})
    moderator = build_moderator(offline_demo_config())
    with pytest.raises(StartupError, match="no-such-policy"):
        review_consensus(Settings(review={"consensus": {"no-such-policy": {"verdicts": 2}}}), moderator)
    review_consensus(Settings(review={"consensus": {"strict": {"verdicts": 2}}}), moderator)
