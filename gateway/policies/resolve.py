"""A set of stored policy tables -> validated `Policy` objects, by the TOML config's own rules.

Why here and not in the store: the same checks run when a version is written (so a bad one is refused
with the TOML's error message), when it is activated, and when a replica rebuilds its moderator.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from moderation.config import ModerationConfigError, build_policies
from moderation.policy import Policy

__all__ = ["check_name", "ordered", "resolve"]

MAX_NAME_CHARS = 128


def check_name(name: str) -> str:
    """A policy name as API keys and the TOML file name it: 1-128 printable characters, no dot (a dot
    would split the TOML table name `[moderation.policies.NAME]`)."""
    if (
        not name
        or len(name) > MAX_NAME_CHARS
        or not name.isprintable()
        or "." in name
        or name != name.strip()
    ):
        raise ModerationConfigError(
            f"policy name must be 1-{MAX_NAME_CHARS} printable characters without dots or surrounding "
            f"spaces, got {name!r}"
        )
    return name


def ordered(tables: Mapping[str, Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """The tables in an order where each comes after the one it `extends` (names sorted otherwise), so
    the result does not depend on the order rows come back from the database. A cycle is left for
    `build_policies` to report (an `extends` of a policy not defined yet)."""
    out: dict[str, Mapping[str, Any]] = {}
    visiting: set[str] = set()

    def place(name: str) -> None:
        if name in out or name in visiting:
            return
        visiting.add(name)
        base = tables[name].get("extends") if isinstance(tables[name], Mapping) else None
        if isinstance(base, str) and base in tables and base != name:
            place(base)
        visiting.discard(name)
        out[name] = tables[name]

    for name in sorted(tables):
        place(name)
    return out


def resolve(tables: Mapping[str, Mapping[str, Any]]) -> dict[str, Policy]:
    """The presets plus `tables`, each checked exactly like `[moderation.policies]` in the TOML file
    (errors name `moderation.policies.NAME...`). Raises ModerationConfigError."""
    for name in tables:
        check_name(name)
    return build_policies(ordered(tables))
