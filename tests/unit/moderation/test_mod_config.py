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
    ({"shadow_policies": "strict"}, "moderation.shadow_policies: must be a list"),
    ({"shadow_policies": ["strict", "ghost"]}, r"moderation.shadow_policies\[1\]: unknown policy 'ghost'"),
    ({"identity_check": {"enable": True}}, "moderation.identity_check.enable: unknown key"),
    ({"identity_check": {"enabled": "yes"}}, "moderation.identity_check.enabled: must be true or false"),
    ({"identity_check": {"categories": []}}, "moderation.identity_check.categories: must name at least"),
    ({"identity_check": {"extra_terms": ["gay"]}}, "moderation.identity_check.extra_terms: must be a table"),
    (
        {"identity_check": {"extra_terms": {"x": 1}}},
        "moderation.identity_check.extra_terms.x: must be a string",
    ),
    ({"identity_check": {"extra_terms": {"x": ""}}}, "moderation.identity_check: identity terms must be"),
    ({"identity_check": {"terms_file": "/nonexistent/terms.txt"}}, "identity_check.terms_file: cannot read"),
    ({"scorers": [{"type": "keyword", "keywords": {}, "hit": 2}]}, r"scorers\[0\].hit: must be a number"),
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


def test_identity_check_is_on_by_default_and_configurable(tmp_path) -> None:
    scorer = {
        "type": "keyword",
        "keywords": {"identity_attack": ["muslims", "martians"]},
        "hit": 0.95,
        "miss": 0.1,
    }
    default = build_moderator({"scorers": [scorer]})
    assert default.identity_check is not None
    assert default.identity_check.categories == ("identity_attack", "toxicity")
    assert default.moderate(["muslims"])[0].action is Action.HOLD
    off = build_moderator({"scorers": [scorer], "identity_check": {"enabled": False}})
    assert off.identity_check is None and off.moderate(["muslims"])[0].action is Action.BLOCK
    extra = build_moderator({"scorers": [scorer], "identity_check": {"extra_terms": {"martians": "people"}}})
    assert extra.moderate(["martians"])[0].action is Action.HOLD
    assert default.moderate(["martians"])[0].action is Action.BLOCK  # not a listed term
    terms = tmp_path / "terms.txt"
    terms.write_text("# only one\nmartians = people\n", encoding="utf-8")
    own = build_moderator({"scorers": [scorer], "identity_check": {"terms_file": str(terms)}})
    assert own.identity_check is not None and dict(own.identity_check.terms.terms) == {"martians": "people"}
    assert [d.action for d in own.moderate(["martians", "muslims"])] == [Action.HOLD, Action.BLOCK]
    only_toxicity = build_moderator({"scorers": [scorer], "identity_check": {"categories": ["toxicity"]}})
    assert only_toxicity.moderate(["muslims"])[0].action is Action.BLOCK


def test_bad_terms_file_names_the_line(tmp_path) -> None:
    terms = tmp_path / "terms.txt"
    terms.write_text("gay = person\n = people\n", encoding="utf-8")
    with pytest.raises(ModerationConfigError, match=r"identity_check\.terms_file: .*line 2"):
        build_moderator(keyword_config(identity_check={"terms_file": str(terms)}))


def test_shadow_policies_from_config() -> None:
    moderator = build_moderator(keyword_config(shadow_policies=["strict", "permissive"]))
    assert moderator.shadow_policies == ("strict", "permissive")
    [d] = moderator.moderate(["idiot"])
    assert d.action is Action.HOLD
    assert [(s.policy_name, s.action) for s in d.shadow] == [
        ("strict", Action.BLOCK),  # toxicity 1.0 >= strict's block 0.9
        ("permissive", Action.RELEASE),
    ]
    assert build_moderator(keyword_config()).shadow_policies == ()
