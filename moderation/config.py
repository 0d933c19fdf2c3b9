"""Build a Moderator from plain data (the `[moderation]` table of the gateway's TOML file).

Every key is checked; a bad one raises ModerationConfigError naming it (`moderation.scorers[1].model`).
A scorer that cannot be loaded is an error too: a scorer is never silently swapped for another one.
Heavy libraries (torch, detoxify, scikit-learn) are imported only for the scorers that are configured.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from moderation.identity import (
    DEFAULT_CATEGORIES,
    IdentityCheckSettings,
    IdentityTerms,
    builtin_terms,
    load_terms,
)
from moderation.masking import Masker, MaskStyle
from moderation.moderator import Moderator, StreamSettings, UnknownPolicyError
from moderation.policy import PRESETS, Policy, Thresholds
from moderation.types import Action, Scorer

__all__ = [
    "ModerationConfigError",
    "UnknownPolicyError",
    "build_identity_check",
    "build_moderator",
    "build_policies",
    "build_scorer",
    "default_config",
    "offline_demo_config",
]

_ROOT = "moderation"


class ModerationConfigError(ValueError):
    """The moderation configuration is wrong, or names a model that cannot be loaded."""


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
    _require_mapping(config, _ROOT)
    _check_keys(
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
    shadow = _str_list(config.get("shadow_policies", []), f"{_ROOT}.shadow_policies")
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
        _require_mapping(table, where)
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


def _profanity(table: Mapping[str, Any], where: str) -> Scorer:
    from moderation.scorers.profanity import ProfanityScorer

    _check_keys(
        table,
        where,
        {"name", "builtin_words", "builtin_allow", "extra_words", "extra_allow", "word_files", "allow_files"},
    )
    kwargs: dict[str, Any] = {}
    for key in ("extra_words", "extra_allow", "word_files", "allow_files"):
        if key in table:
            kwargs[key] = _str_list(table[key], f"{where}.{key}")
    for key in ("builtin_words", "builtin_allow"):
        if key in table:
            kwargs[key] = _bool(table[key], f"{where}.{key}")
    if "name" in table:
        kwargs["name"] = _str(table["name"], f"{where}.name")
    try:
        return ProfanityScorer(**kwargs)
    except OSError as exc:
        raise ModerationConfigError(f"{where}: cannot read a word list: {exc}") from exc


def _detoxify(table: Mapping[str, Any], where: str) -> Scorer:
    from moderation.scorers.detoxify_scorer import MODELS, DetoxifyScorer, ScorerLoadError

    _check_keys(
        table,
        where,
        {"name", "model", "checkpoint", "huggingface_config_path", "device", "quantize", "batch_size"},
    )
    model = table.get("model", "unbiased")
    if model not in MODELS:
        raise ModerationConfigError(f"{where}.model: must be one of {', '.join(MODELS)}, got {model!r}")
    kwargs: dict[str, Any] = {"model": model}
    for key in ("name", "checkpoint", "huggingface_config_path", "device"):
        if key in table:
            kwargs[key] = _str(table[key], f"{where}.{key}")
    if "quantize" in table:
        kwargs["quantize"] = _bool(table["quantize"], f"{where}.quantize")
    if "batch_size" in table:
        kwargs["batch_size"] = _positive_int(table["batch_size"], f"{where}.batch_size")
    try:
        return DetoxifyScorer(**kwargs)
    except ScorerLoadError as exc:
        raise ModerationConfigError(f"{where} (detoxify {model}): {exc}") from exc


def _profanity_check(table: Mapping[str, Any], where: str) -> Scorer:
    _check_keys(table, where, {"name", "builtin_allow", "extra_allow"})
    kwargs: dict[str, Any] = {}
    if "name" in table:
        kwargs["name"] = _str(table["name"], f"{where}.name")
    if "builtin_allow" in table:
        kwargs["builtin_allow"] = _bool(table["builtin_allow"], f"{where}.builtin_allow")
    if "extra_allow" in table:
        kwargs["extra_allow"] = _str_list(table["extra_allow"], f"{where}.extra_allow")
    try:
        from moderation.scorers.profanity_check import ProfanityCheckScorer

        return ProfanityCheckScorer(**kwargs)
    except ImportError as exc:
        raise ModerationConfigError(f"{where}: alt-profanity-check is not installed: {exc}") from exc


def _keyword(table: Mapping[str, Any], where: str) -> Scorer:
    from moderation.testing import KeywordScorer

    _check_keys(table, where, {"name", "keywords", "hit", "miss"})
    keywords = table.get("keywords")
    if not isinstance(keywords, Mapping):
        raise ModerationConfigError(f"{where}.keywords: must be a table, got {type(keywords).__name__}")
    parsed = {str(cat): _str_list(words, f"{where}.keywords.{cat}") for cat, words in keywords.items()}
    kwargs: dict[str, Any] = {}
    if "name" in table:
        kwargs["name"] = _str(table["name"], f"{where}.name")
    for key in ("hit", "miss"):
        if key in table:
            kwargs[key] = _unit(table[key], f"{where}.{key}")
    return KeywordScorer(parsed, **kwargs)


_SCORERS: dict[str, Callable[[Mapping[str, Any], str], Scorer]] = {
    "profanity": _profanity,
    "detoxify": _detoxify,
    "profanity_check": _profanity_check,
    "keyword": _keyword,  # deterministic, for tests and demos
}


def build_scorer(table: Mapping[str, Any], *, where: str = f"{_ROOT}.scorers[0]") -> Scorer:
    """One scorer from its table (`type` plus that scorer's keys)."""
    _require_mapping(table, where)
    kind = table.get("type")
    if kind not in _SCORERS:
        raise ModerationConfigError(f"{where}.type: must be one of {', '.join(_SCORERS)}, got {kind!r}")
    return _SCORERS[kind]({k: v for k, v in table.items() if k != "type"}, where)


# ---- policies --------------------------------------------------------------------------------------


def build_policies(tables: Mapping[str, Any]) -> dict[str, Policy]:
    """The presets plus the configured policies; a configured policy may `extends` a preset or an
    earlier one, then overrides thresholds per category (an empty table removes a category)."""
    where = f"{_ROOT}.policies"
    _require_mapping(tables, where)
    policies = dict(PRESETS)
    for name, table in tables.items():
        here = f"{where}.{name}"
        _require_mapping(table, here)
        _check_keys(
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
            },
        )
        base_name = table.get("extends")
        if base_name is not None and base_name not in policies:
            raise ModerationConfigError(f"{here}.extends: unknown policy {base_name!r}")
        base = policies[base_name] if base_name is not None else Policy(name=name)
        thresholds = dict(base.thresholds)
        raw_thresholds = table.get("thresholds", {})
        _require_mapping(raw_thresholds, f"{here}.thresholds")
        for category, rule in raw_thresholds.items():
            thresholds.pop(category, None)
            rule_where = f"{here}.thresholds.{category}"
            _require_mapping(rule, rule_where)
            _check_keys(rule, rule_where, {"hold", "block"})
            if rule:
                try:
                    thresholds[category] = Thresholds(
                        hold=_unit(rule.get("hold"), f"{rule_where}.hold"),
                        block=_unit(rule.get("block"), f"{rule_where}.block"),
                    )
                except ValueError as exc:
                    raise ModerationConfigError(f"{rule_where}: {exc}") from exc
        span_actions = dict(base.span_actions)
        raw_spans = table.get("span_actions", {})
        _require_mapping(raw_spans, f"{here}.span_actions")
        for category, action in raw_spans.items():
            span_actions[category] = _span_action(action, f"{here}.span_actions.{category}")
        if "profanity_action" in table:
            span_actions["profanity"] = _span_action(table["profanity_action"], f"{here}.profanity_action")
        policies[name] = Policy(
            name=name,
            thresholds=thresholds,
            span_actions=span_actions,
            unknown_span_action=_span_action(table["unknown_span_action"], f"{here}.unknown_span_action")
            if "unknown_span_action" in table
            else base.unknown_span_action,
            review_all=_bool(table.get("review_all", base.review_all), f"{here}.review_all"),
            description=_str(table.get("description", base.description), f"{here}.description"),
        )
    return policies


# ---- identity-term check --------------------------------------------------------------------------


def build_identity_check(table: Mapping[str, Any]) -> IdentityCheckSettings | None:
    """`[moderation.identity_check]`: on by default (the shipped term list, identity_attack and
    toxicity); `enabled = false` turns it off. `terms_file` replaces the shipped list, `extra_terms`
    (term -> substitute) adds to or overrides whichever list is used."""
    where = f"{_ROOT}.identity_check"
    _require_mapping(table, where)
    _check_keys(table, where, {"enabled", "categories", "terms_file", "extra_terms"})
    if not _bool(table.get("enabled", True), f"{where}.enabled"):
        return None
    categories = _str_list(table.get("categories", list(DEFAULT_CATEGORIES)), f"{where}.categories")
    if not categories:
        raise ModerationConfigError(f"{where}.categories: must name at least one category")
    extra = table.get("extra_terms", {})
    _require_mapping(extra, f"{where}.extra_terms")
    extra_terms = {str(t): _str(sub, f"{where}.extra_terms.{t}") for t, sub in extra.items()}
    try:
        if "terms_file" in table:
            terms = load_terms(_str(table["terms_file"], f"{where}.terms_file"))
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
    _require_mapping(table, where)
    _check_keys(table, where, {"style", "char"})
    style = table.get("style", "keep_first")
    if style not in {s.value for s in MaskStyle}:
        raise ModerationConfigError(f"{where}.style: must be 'keep_first' or 'full', got {style!r}")
    try:
        return Masker(style=style, char=_str(table.get("char", "*"), f"{where}.char"))
    except ValueError as exc:
        raise ModerationConfigError(f"{where}.char: {exc}") from exc


def _build_stream_settings(table: Mapping[str, Any]) -> StreamSettings:
    where = f"{_ROOT}.streaming"
    _require_mapping(table, where)
    _check_keys(table, where, {"right_context_words", "min_release_words"})
    right = table.get("right_context_words", 2)
    if isinstance(right, bool) or not isinstance(right, int) or right < 0:
        raise ModerationConfigError(f"{where}.right_context_words: must be an integer >= 0, got {right!r}")
    return StreamSettings(
        right_context_words=right,
        min_release_words=_positive_int(table.get("min_release_words", 1), f"{where}.min_release_words"),
    )


def _check_keys(table: Mapping[str, Any], where: str, allowed: set[str]) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ModerationConfigError(
            f"{where}.{unknown[0]}: unknown key; expected one of {', '.join(sorted(allowed))}"
        )


def _require_mapping(value: Any, where: str) -> None:
    if not isinstance(value, Mapping):
        raise ModerationConfigError(f"{where}: must be a table, got {type(value).__name__}")


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ModerationConfigError(f"{where}: must be a string, got {value!r}")
    return value


def _str_list(value: Any, where: str) -> list[str]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ModerationConfigError(f"{where}: must be a list of strings, got {value!r}")
    return list(value)


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise ModerationConfigError(f"{where}: must be true or false, got {value!r}")
    return value


def _positive_int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ModerationConfigError(f"{where}: must be an integer >= 1, got {value!r}")
    return value


def _unit(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise ModerationConfigError(f"{where}: must be a number in [0, 1], got {value!r}")
    return float(value)


def _span_action(value: Any, where: str) -> Action:
    choices = {"mask": Action.MASK, "hold": Action.HOLD, "block": Action.BLOCK}
    if value not in choices:
        raise ModerationConfigError(f"{where}: must be 'mask', 'hold' or 'block', got {value!r}")
    return choices[value]
