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
    read_options,
    require_mapping,
)
from moderation.types import Scorer

__all__ = ["build_scorer"]

_ROOT = "moderation"


def _profanity(table: Mapping[str, Any], where: str) -> Scorer:
    from moderation.scorers.profanity import ProfanityScorer

    lists = ("extra_words", "extra_allow", "word_files", "allow_files")
    readers = {
        "name": as_str,
        "builtin_words": as_bool,
        "builtin_allow": as_bool,
        **dict.fromkeys(lists, as_str_list),
    }
    kwargs = read_options(table, where, readers)
    try:
        return ProfanityScorer(**kwargs)
    except OSError as exc:
        raise ModerationConfigError(f"{where}: cannot read a word list: {exc}") from exc


def _detoxify(table: Mapping[str, Any], where: str) -> Scorer:
    from moderation.scorers.detoxify_scorer import MODELS, DetoxifyScorer, ScorerLoadError

    def model_name(value: Any, at: str) -> str:
        if value not in MODELS:
            raise ModerationConfigError(f"{at}: must be one of {', '.join(MODELS)}, got {value!r}")
        return str(value)

    strings = ("name", "checkpoint", "huggingface_config_path", "device")
    readers = {
        "model": model_name,
        "quantize": as_bool,
        "batch_size": as_positive_int,
        **dict.fromkeys(strings, as_str),
    }
    kwargs = {"model": "unbiased", **read_options(table, where, readers)}
    try:
        return DetoxifyScorer(**kwargs)
    except ScorerLoadError as exc:
        raise ModerationConfigError(f"{where} (detoxify {kwargs['model']}): {exc}") from exc


def _profanity_check(table: Mapping[str, Any], where: str) -> Scorer:
    kwargs = read_options(
        table, where, {"name": as_str, "builtin_allow": as_bool, "extra_allow": as_str_list}
    )
    try:
        from moderation.scorers.profanity_check import ProfanityCheckScorer

        return ProfanityCheckScorer(**kwargs)
    except ImportError as exc:
        raise ModerationConfigError(f"{where}: alt-profanity-check is not installed: {exc}") from exc


def _keywords(value: Any, where: str) -> dict[str, list[str]]:
    if not isinstance(value, Mapping):
        raise ModerationConfigError(f"{where}: must be a table, got {type(value).__name__}")
    return {str(cat): as_str_list(words, f"{where}.{cat}") for cat, words in value.items()}


def _keyword(table: Mapping[str, Any], where: str) -> Scorer:
    from moderation.testing import KeywordScorer

    kwargs = read_options(
        table, where, {"name": as_str, "keywords": _keywords, "hit": as_unit, "miss": as_unit}
    )
    if "keywords" not in kwargs:
        raise ModerationConfigError(f"{where}.keywords: must be a table, got NoneType")
    return KeywordScorer(kwargs.pop("keywords"), **kwargs)


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
