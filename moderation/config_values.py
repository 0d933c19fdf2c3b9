"""Checked reading of configuration values: each helper returns the value in its type or raises
ModerationConfigError naming where it was (`moderation.scorers[1].model`). Shared by `moderation.config`
and `moderation.config_scorers`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from moderation.types import Action

__all__ = ["ModerationConfigError"]


class ModerationConfigError(ValueError):
    """The moderation configuration is wrong, or names a model that cannot be loaded."""


def check_keys(table: Mapping[str, Any], where: str, allowed: set[str]) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ModerationConfigError(
            f"{where}.{unknown[0]}: unknown key; expected one of {', '.join(sorted(allowed))}"
        )


def read_options(
    table: Mapping[str, Any], where: str, readers: Mapping[str, Callable[[Any, str], Any]]
) -> dict[str, Any]:
    """The keys present in `table`, each read by its reader; a key without a reader is refused."""
    check_keys(table, where, set(readers))
    return {key: readers[key](value, f"{where}.{key}") for key, value in table.items()}


def require_mapping(value: Any, where: str) -> None:
    if not isinstance(value, Mapping):
        raise ModerationConfigError(f"{where}: must be a table, got {type(value).__name__}")


def as_str(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ModerationConfigError(f"{where}: must be a string, got {value!r}")
    return value


def as_str_list(value: Any, where: str) -> list[str]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ModerationConfigError(f"{where}: must be a list of strings, got {value!r}")
    return list(value)


def as_bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise ModerationConfigError(f"{where}: must be true or false, got {value!r}")
    return value


def as_positive_int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ModerationConfigError(f"{where}: must be an integer >= 1, got {value!r}")
    return value


def as_unit(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise ModerationConfigError(f"{where}: must be a number in [0, 1], got {value!r}")
    return float(value)


def as_span_action(value: Any, where: str) -> Action:
    choices = {"mask": Action.MASK, "hold": Action.HOLD, "block": Action.BLOCK}
    if value not in choices:
        raise ModerationConfigError(f"{where}: must be 'mask', 'hold' or 'block', got {value!r}")
    return choices[value]
