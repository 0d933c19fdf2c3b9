"""Build a Moderator from plain data (the `[moderation]` table of the gateway's TOML file).

Every key is checked; a bad one raises ModerationConfigError naming it (`moderation.scorers[1].model`).
A scorer that cannot be loaded is an error too: a scorer is never silently swapped for another one.
Heavy libraries (torch, detoxify, scikit-learn) are imported only for the scorers that are configured.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from moderation.config_scorers import build_scorer
from moderation.config_values import (
    ModerationConfigError,
    as_bool,
    as_positive_int,
    as_span_action,
    as_str,
    as_str_list,
    as_unit,
    check_keys,
    require_mapping,
)
from moderation.identity import (
    DEFAULT_CATEGORIES,
    IdentityCheckSettings,
    IdentityTerms,
    builtin_terms,
    load_terms,
)
from moderation.masking import Masker, MaskStyle
from moderation.moderator import Moderator, UnknownPolicyError
from moderation.policy import PRESETS, PROMPT_SCREENING_ACTIONS, Policy, Thresholds
from moderation.streaming import StreamSettings
from moderation.types import Action, Scorer

__all__ = [
    "ModerationConfigError",
    "UnknownPolicyError",
    "build_identity_check",
    "build_moderator",
    "build_policies",
    "build_policy",
    "build_scorer",
    "default_config",
    "offline_demo_config",
]

_ROOT = "moderation"


def default_config() -> dict[str, Any]:
    """Production default: detoxify's `unbiased` model (downloaded by detoxify on a connected machine,
    or from `checkpoint` + `huggingface_config_path`) and the built-in profanity word list."""
    return {
        "default_policy": "default",
        "mask": {"style": "keep_first", "char": "*"},
        "scorers": [
            {"type": "profanity"},
            {"type": "detoxify", "model": "unbiased", "device": "auto", "quantize": False},
        ],
        "streaming": {"right_context_words": 2, "min_release_words": 1},
    }


def offline_demo_config() -> dict[str, Any]:
    """For machines without detoxify weights: the word list plus alt-profanity-check (a small linear
    model shipped inside its package). Much weaker than detoxify: the gateway must say so loudly."""
    return {
        "default_policy": "default",
        "mask": {"style": "keep_first", "char": "*"},
        "scorers": [
            {"type": "profanity"},
            # Judges the text with listed profanity already masked: "what the f***" is then fine,
            # "you are a f****** idiot" is not.
            {"type": "profanity_check", "input": "masked"},
        ],
        "streaming": {"right_context_words": 2, "min_release_words": 1},
    }


def build_moderator(config: Mapping[str, Any]) -> Moderator:
    """A ready Moderator (models loaded) from the `[moderation]` table. Raises ModerationConfigError."""
    require_mapping(config, _ROOT)
    check_keys(
        config,
        _ROOT,
        {"default_policy", "mask", "scorers", "policies", "streaming", "identity_check", "shadow_policies"},
    )
    policies = build_policies(config.get("policies", {}))
    default_policy = config.get("default_policy", "default")
    if default_policy not in policies:
        raise ModerationConfigError(
            f"{_ROOT}.default_policy: unknown policy {default_policy!r}; known: {', '.join(policies)}"
        )
    shadow = as_str_list(config.get("shadow_policies", []), f"{_ROOT}.shadow_policies")
    for i, name in enumerate(shadow):
        if name not in policies:
            raise ModerationConfigError(
                f"{_ROOT}.shadow_policies[{i}]: unknown policy {name!r}; known: {', '.join(policies)}"
            )
    identity_check = build_identity_check(config.get("identity_check", {}))
    masker = _build_masker(config.get("mask", {}))
    scorer_tables = config.get("scorers", default_config()["scorers"])
    if not isinstance(scorer_tables, list) or not scorer_tables:
        raise ModerationConfigError(f"{_ROOT}.scorers: must be a non-empty list of scorer tables")
    direct: list[Scorer] = []
    masked: list[Scorer] = []
    for i, table in enumerate(scorer_tables):
        where = f"{_ROOT}.scorers[{i}]"
        require_mapping(table, where)
        sees = table.get("input", "original")
        if sees not in ("original", "masked"):
            raise ModerationConfigError(f"{where}.input: must be 'original' or 'masked', got {sees!r}")
        scorer = build_scorer({k: v for k, v in table.items() if k != "input"}, where=where)
        (masked if sees == "masked" else direct).append(scorer)
    if not direct and masked:
        raise ModerationConfigError(
            f"{_ROOT}.scorers: input='masked' needs at least one scorer on the original"
        )
    try:
        return Moderator(
            direct,
            policies,
            default_policy=default_policy,
            masker=masker,
            masked_scorers=masked,
            stream_settings=_build_stream_settings(config.get("streaming", {})),
            identity_check=identity_check,
            shadow_policies=shadow,
        )
    except ValueError as exc:  # duplicate scorer names
        raise ModerationConfigError(f"{_ROOT}.scorers: {exc}") from exc


# ---- scorers ---------------------------------------------------------------------------------------


def build_policies(tables: Mapping[str, Any]) -> dict[str, Policy]:
    """The presets plus the configured policies; a configured policy may `extends` a preset or an
    earlier one, then overrides thresholds per category (an empty table removes a category)."""
    where = f"{_ROOT}.policies"
    require_mapping(tables, where)
    policies = dict(PRESETS)
    for name, table in tables.items():
        policies[name] = build_policy(name, table, known=policies)
    return policies


def build_policy(name: str, table: Any, *, known: Mapping[str, Policy]) -> Policy:
    """One `[moderation.policies.NAME]` table as a Policy; `extends` may name any policy in `known`.

    Why separate: a proposed policy read from its own file (`modgate policy backtest`, the backtest page)
    is checked by exactly these rules and named in its errors exactly like a table of the config."""
    here = f"{_ROOT}.policies.{name}"
    require_mapping(table, here)
    check_keys(
        table,
        here,
        {
            "extends",
            "thresholds",
            "profanity_action",
            "span_actions",
            "unknown_span_action",
            "review_all",
            "description",
            "prompt_screening",
        },
    )
    base_name = table.get("extends")
    if base_name is not None and base_name not in known:
        raise ModerationConfigError(f"{here}.extends: unknown policy {base_name!r}")
    base = known[base_name] if base_name is not None else Policy(name=name)
    thresholds = dict(base.thresholds)
    raw_thresholds = table.get("thresholds", {})
    require_mapping(raw_thresholds, f"{here}.thresholds")
    for category, rule in raw_thresholds.items():
        thresholds.pop(category, None)
        rule_where = f"{here}.thresholds.{category}"
        require_mapping(rule, rule_where)
        check_keys(rule, rule_where, {"hold", "block"})
        if rule:
            try:
                thresholds[category] = Thresholds(
                    hold=as_unit(rule.get("hold"), f"{rule_where}.hold"),
                    block=as_unit(rule.get("block"), f"{rule_where}.block"),
                )
            except ValueError as exc:
                raise ModerationConfigError(f"{rule_where}: {exc}") from exc
    span_actions = dict(base.span_actions)
    raw_spans = table.get("span_actions", {})
    require_mapping(raw_spans, f"{here}.span_actions")
    for category, action in raw_spans.items():
        span_actions[category] = as_span_action(action, f"{here}.span_actions.{category}")
    if "profanity_action" in table:
        span_actions["profanity"] = as_span_action(table["profanity_action"], f"{here}.profanity_action")
    screening = _prompt_screening(
        table.get("prompt_screening", {}), base.prompt_screening, f"{here}.prompt_screening"
    )
    return Policy(
        name=name,
        thresholds=thresholds,
        span_actions=span_actions,
        unknown_span_action=as_span_action(table["unknown_span_action"], f"{here}.unknown_span_action")
        if "unknown_span_action" in table
        else base.unknown_span_action,
        review_all=as_bool(table.get("review_all", base.review_all), f"{here}.review_all"),
        description=as_str(table.get("description", base.description), f"{here}.description"),
        prompt_screening=screening,
    )


def _prompt_screening(table: Any, inherited: Mapping[str, Action], where: str) -> dict[str, Action]:
    """`prompt_screening`: category -> "off" | "hold" | "block", over what `extends` gave (`off` removes
    one)."""
    require_mapping(table, where)
    screening = dict(inherited)
    choices = {a.name.lower(): a for a in PROMPT_SCREENING_ACTIONS}
    for category, value in table.items():
        if value == "off":
            screening.pop(category, None)
        elif value in choices:
            screening[category] = choices[value]
        else:
            allowed = ", ".join(repr(c) for c in ["off", *sorted(choices)])
            raise ModerationConfigError(f"{where}.{category}: must be {allowed}, got {value!r}")
    return screening


# ---- identity-term check --------------------------------------------------------------------------


def build_identity_check(table: Mapping[str, Any]) -> IdentityCheckSettings | None:
    """`[moderation.identity_check]`: on by default (the shipped term list, identity_attack and
    toxicity); `enabled = false` turns it off. `terms_file` replaces the shipped list, `extra_terms`
    (term -> substitute) adds to or overrides whichever list is used."""
    where = f"{_ROOT}.identity_check"
    require_mapping(table, where)
    check_keys(table, where, {"enabled", "categories", "terms_file", "extra_terms"})
    if not as_bool(table.get("enabled", True), f"{where}.enabled"):
        return None
    categories = as_str_list(table.get("categories", list(DEFAULT_CATEGORIES)), f"{where}.categories")
    if not categories:
        raise ModerationConfigError(f"{where}.categories: must name at least one category")
    extra = table.get("extra_terms", {})
    require_mapping(extra, f"{where}.extra_terms")
    extra_terms = {str(t): as_str(sub, f"{where}.extra_terms.{t}") for t, sub in extra.items()}
    try:
        if "terms_file" in table:
            terms = load_terms(as_str(table["terms_file"], f"{where}.terms_file"))
        else:
            terms = builtin_terms()
    except OSError as exc:
        raise ModerationConfigError(f"{where}.terms_file: cannot read it: {exc}") from exc
    except ValueError as exc:
        raise ModerationConfigError(f"{where}.terms_file: {exc}") from exc
    try:
        return IdentityCheckSettings(IdentityTerms({**terms, **extra_terms}), tuple(categories))
    except ValueError as exc:
        raise ModerationConfigError(f"{where}: {exc}") from exc


# ---- small parts -----------------------------------------------------------------------------------


def _build_masker(table: Mapping[str, Any]) -> Masker:
    where = f"{_ROOT}.mask"
    require_mapping(table, where)
    check_keys(table, where, {"style", "char"})
    style = table.get("style", "keep_first")
    if style not in {s.value for s in MaskStyle}:
        raise ModerationConfigError(f"{where}.style: must be 'keep_first' or 'full', got {style!r}")
    try:
        return Masker(style=style, char=as_str(table.get("char", "*"), f"{where}.char"))
    except ValueError as exc:
        raise ModerationConfigError(f"{where}.char: {exc}") from exc


def _build_stream_settings(table: Mapping[str, Any]) -> StreamSettings:
    where = f"{_ROOT}.streaming"
    require_mapping(table, where)
    check_keys(table, where, {"right_context_words", "min_release_words"})
    right = table.get("right_context_words", 2)
    if isinstance(right, bool) or not isinstance(right, int) or right < 0:
        raise ModerationConfigError(f"{where}.right_context_words: must be an integer >= 0, got {right!r}")
    return StreamSettings(
        right_context_words=right,
        min_release_words=as_positive_int(table.get("min_release_words", 1), f"{where}.min_release_words"),
    )
