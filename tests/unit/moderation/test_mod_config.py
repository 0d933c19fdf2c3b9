from __future__ import annotations

import copy

import pytest

from moderation.config import (
    ModerationConfigError,
    build_moderator,
    default_config,
    offline_demo_config,
)
from moderation.moderator import UnknownPolicyError
from moderation.types import Action


def keyword_config(**extra) -> dict:
    config = {
        "scorers": [
            {"type": "profanity"},
            {"type": "keyword", "keywords": {"threat": ["kill"], "toxicity": ["idiot"]}},
        ],
    }
    config.update(extra)
    return config


def test_offline_demo_config_builds_and_decides() -> None:
    moderator = build_moderator(offline_demo_config())
    assert [i.name for i in moderator.scorers_info] == ["profanity", "profanity_check"]
    clean, casual, insult = moderator.moderate(
        ["What a lovely sunny day.", "what the fuck, great game", "you are a fucking idiot"]
    )
    assert clean.action is Action.RELEASE
    assert casual.action is Action.MASK and casual.text == "what the f***, great game"
    assert insult.action is Action.HOLD
    assert "profanity_ml" in clean.scores and 0.0 <= clean.scores["profanity_ml"] <= 1.0


def test_default_config_names_detoxify_unbiased() -> None:
    config = default_config()
    [detox] = [s for s in config["scorers"] if s["type"] == "detoxify"]
    assert detox["model"] == "unbiased"
    assert default_config() is not config  # a fresh dict each time: callers may edit it


def test_configured_policies_extend_presets() -> None:
    moderator = build_moderator(
        keyword_config(
            default_policy="tenant-a",
            policies={
                "tenant-a": {
                    "extends": "default",
                    "thresholds": {"threat": {"hold": 0.5}, "insult": {}},
                    "profanity_action": "block",
                },
                "reviewed": {"extends": "tenant-a", "review_all": True},
            },
        )
    )
    assert moderator.default_policy == "tenant-a"
    assert set(moderator.policy_names) == {"default", "strict", "permissive", "tenant-a", "reviewed"}
    kill, shit, fine = moderator.moderate(["kill", "shit", "fine"])
    assert kill.action is Action.HOLD  # threat now holds instead of blocking
    assert shit.action is Action.BLOCK
    assert fine.action is Action.RELEASE
    assert "insult" not in moderator.policy("tenant-a").thresholds
    [reviewed] = moderator.moderate(["fine"], policy="reviewed")
    assert reviewed.action is Action.HOLD
    with pytest.raises(UnknownPolicyError):
        moderator.moderate(["x"], policy="tenant-b")


def test_mask_and_streaming_settings() -> None:
    moderator = build_moderator(
        keyword_config(mask={"style": "full", "char": "#"}, streaming={"right_context_words": 0})
    )
    [d] = moderator.moderate(["oh shit"])
    assert d.text == "oh ####"
    assert moderator.stream_settings.right_context_words == 0


def test_profanity_scorer_options(tmp_path) -> None:
    words = tmp_path / "w.txt"
    words.write_text("gorram\n", encoding="utf-8")
    moderator = build_moderator(
        {"scorers": [{"type": "profanity", "word_files": [str(words)], "extra_allow": ["shit happens"]}]}
    )
    a, b = moderator.moderate(["gorram it", "shit happens"])
    assert a.action is Action.MASK and b.action is Action.RELEASE


BAD = [
    ({"colour": 1}, "moderation.colour: unknown key"),
    ({"default_policy": "nope"}, "moderation.default_policy: unknown policy 'nope'"),
    ({"scorers": []}, "moderation.scorers: must be a non-empty list"),
    ({"scorers": [{"type": "magic"}]}, r"moderation.scorers\[0\].type: must be one of"),
    (
        {"scorers": [{"type": "profanity", "extra_word": ["x"]}]},
        r"moderation.scorers\[0\].extra_word: unknown key",
    ),
    ({"scorers": [{"type": "profanity", "extra_words": "x"}]}, r"scorers\[0\].extra_words: must be a list"),
    (
        {"scorers": [{"type": "profanity", "input": "both"}]},
        r"scorers\[0\].input: must be 'original' or 'masked'",
    ),
    ({"scorers": [{"type": "profanity"}, {"type": "profanity"}]}, "unique"),
    (
        {"scorers": [{"type": "profanity", "word_files": ["/nonexistent/list.txt"]}]},
        "cannot read a word list",
    ),
    ({"scorers": [{"type": "detoxify", "model": "huge"}]}, r"scorers\[0\].model: must be one of"),
    ({"mask": {"style": "blur"}}, "moderation.mask.style"),
    ({"mask": {"char": "**"}}, "moderation.mask.char"),
    ({"streaming": {"right_context_words": -1}}, "moderation.streaming.right_context_words"),
    ({"streaming": {"min_release_words": 0}}, "moderation.streaming.min_release_words"),
    (
        {"policies": {"p": {"thresholds": {"toxicity": {"hold": 2}}}}},
        "moderation.policies.p.thresholds.toxicity.hold",
    ),
    ({"policies": {"p": {"thresholds": {"toxicity": {"hold": 0.9, "block": 0.5}}}}}, "above block"),
    ({"policies": {"p": {"thresholds": {"toxicity": {"warn": 0.5}}}}}, "toxicity.warn: unknown key"),
    ({"policies": {"p": {"profanity_action": "release"}}}, "moderation.policies.p.profanity_action"),
    ({"policies": {"p": {"extends": "ghost"}}}, "moderation.policies.p.extends: unknown policy 'ghost'"),
    ({"policies": {"p": {"review_all": "yes"}}}, "moderation.policies.p.review_all: must be true or false"),
]


@pytest.mark.parametrize(("patch", "message"), BAD)
def test_bad_config_names_the_key(patch: dict, message: str) -> None:
    config = copy.deepcopy(keyword_config())
    config.update(patch)
    with pytest.raises(ModerationConfigError, match=message):
        build_moderator(config)


def test_unloadable_detoxify_checkpoint_is_an_error_not_a_fallback(tmp_path) -> None:
    config = {
        "scorers": [
            {"type": "profanity"},
            {
                "type": "detoxify",
                "checkpoint": str(tmp_path / "missing.ckpt"),
                "huggingface_config_path": str(tmp_path),
            },
        ]
    }
    with pytest.raises(ModerationConfigError, match=r"moderation.scorers\[1\] \(detoxify unbiased\)"):
        build_moderator(config)
