"""The `[[moderation.scorers]]` tables: one builder per scorer type, each checking its keys.

Heavy libraries (torch, detoxify, scikit-learn) are imported only for the scorers that are configured.
A scorer that cannot be loaded is an error: it is never silently swapped for another one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from moderation.config_values import (
    ModerationConfigError,
    as_bool,
    as_positive_int,
    as_str,
    as_str_list,
    as_unit,
    check_keys,
    require_mapping,
)
from moderation.types import Scorer

__all__ = ["build_scorer"]

_ROOT = "moderation"


def _profanity(table: Mapping[str, Any], where: str) -> Scorer:
    from moderation.scorers.profanity import ProfanityScorer

    check_keys(
        table,
        where,
        {"name", "builtin_words", "builtin_allow", "extra_words", "extra_allow", "word_files", "allow_files"},
    )
    kwargs: dict[str, Any] = {}
    for key in ("extra_words", "extra_allow", "word_files", "allow_files"):
        if key in table:
            kwargs[key] = as_str_list(table[key], f"{where}.{key}")
    for key in ("builtin_words", "builtin_allow"):
        if key in table:
            kwargs[key] = as_bool(table[key], f"{where}.{key}")
    if "name" in table:
        kwargs["name"] = as_str(table["name"], f"{where}.name")
    try:
        return ProfanityScorer(**kwargs)
    except OSError as exc:
        raise ModerationConfigError(f"{where}: cannot read a word list: {exc}") from exc


def _detoxify(table: Mapping[str, Any], where: str) -> Scorer:
    from moderation.scorers.detoxify_scorer import MODELS, DetoxifyScorer, ScorerLoadError

    check_keys(
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
            kwargs[key] = as_str(table[key], f"{where}.{key}")
    if "quantize" in table:
        kwargs["quantize"] = as_bool(table["quantize"], f"{where}.quantize")
    if "batch_size" in table:
        kwargs["batch_size"] = as_positive_int(table["batch_size"], f"{where}.batch_size")
    try:
        return DetoxifyScorer(**kwargs)
    except ScorerLoadError as exc:
        raise ModerationConfigError(f"{where} (detoxify {model}): {exc}") from exc


def _profanity_check(table: Mapping[str, Any], where: str) -> Scorer:
    check_keys(table, where, {"name", "builtin_allow", "extra_allow"})
    kwargs: dict[str, Any] = {}
    if "name" in table:
        kwargs["name"] = as_str(table["name"], f"{where}.name")
    if "builtin_allow" in table:
        kwargs["builtin_allow"] = as_bool(table["builtin_allow"], f"{where}.builtin_allow")
    if "extra_allow" in table:
        kwargs["extra_allow"] = as_str_list(table["extra_allow"], f"{where}.extra_allow")
    try:
        from moderation.scorers.profanity_check import ProfanityCheckScorer

        return ProfanityCheckScorer(**kwargs)
    except ImportError as exc:
        raise ModerationConfigError(f"{where}: alt-profanity-check is not installed: {exc}") from exc


def _keyword(table: Mapping[str, Any], where: str) -> Scorer:
    from moderation.testing import KeywordScorer

    check_keys(table, where, {"name", "keywords", "hit", "miss"})
    keywords = table.get("keywords")
    if not isinstance(keywords, Mapping):
        raise ModerationConfigError(f"{where}.keywords: must be a table, got {type(keywords).__name__}")
    parsed = {str(cat): as_str_list(words, f"{where}.keywords.{cat}") for cat, words in keywords.items()}
    kwargs: dict[str, Any] = {}
    if "name" in table:
        kwargs["name"] = as_str(table["name"], f"{where}.name")
    for key in ("hit", "miss"):
        if key in table:
            kwargs[key] = as_unit(table[key], f"{where}.{key}")
    return KeywordScorer(parsed, **kwargs)


_SCORERS: dict[str, Callable[[Mapping[str, Any], str], Scorer]] = {
    "profanity": _profanity,
    "detoxify": _detoxify,
    "profanity_check": _profanity_check,
    "keyword": _keyword,  # deterministic, for tests and demos
}


def build_scorer(table: Mapping[str, Any], *, where: str = f"{_ROOT}.scorers[0]") -> Scorer:
    """One scorer from its table (`type` plus that scorer's keys)."""
    require_mapping(table, where)
    kind = table.get("type")
    if kind not in _SCORERS:
        raise ModerationConfigError(f"{where}.type: must be one of {', '.join(_SCORERS)}, got {kind!r}")
    return _SCORERS[kind]({k: v for k, v in table.items() if k != "type"}, where)


# ---- policies --------------------------------------------------------------------------------------
