"""A stored policy version as the TOML a policy file holds, and a readable diff of two versions.

Why TOML and not JSON: `modgate policy show NAME > f.toml`, edit, `modgate policy set NAME f.toml` is the
round trip operators use, and a diff reads like the file they edit.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping
from typing import Any

from gateway.policies.store import VersionInfo

__all__ = ["diff_versions", "to_toml"]

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _key(name: str) -> str:
    return name if _BARE_KEY.fullmatch(name) else json.dumps(name)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_key(str(k))} = {_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def to_toml(table: Mapping[str, Any]) -> str:
    """The keys of one policy table as a policy file: scalars first, then one `[section]` per table and
    one `[thresholds.CATEGORY]` per threshold rule, keys sorted so that equal tables read the same."""
    lines: list[str] = []
    sections: list[tuple[str, Mapping[str, Any]]] = []
    for key in sorted(table):
        value = table[key]
        if isinstance(value, Mapping):
            sections.append((key, value))
        else:
            lines.append(f"{_key(key)} = {_value(value)}")
    for key, section in sections:
        scalars = {k: v for k, v in section.items() if not isinstance(v, Mapping)}
        nested = {k: v for k, v in section.items() if isinstance(v, Mapping)}
        if scalars or not nested:
            lines += ["", f"[{_key(key)}]"]
            lines += [f"{_key(str(k))} = {_value(v)}" for k, v in sorted(scalars.items())]
        for sub in sorted(nested):
            lines += ["", f"[{_key(key)}.{_key(str(sub))}]"]
            lines += [f"{_key(str(k))} = {_value(v)}" for k, v in sorted(nested[sub].items())]
    return "\n".join(lines).lstrip("\n") + "\n"


def diff_versions(a: VersionInfo, b: VersionInfo) -> str:
    """A unified diff of version `a` to version `b` as policy files; empty when their tables are equal."""
    return "".join(
        difflib.unified_diff(
            to_toml(a.body).splitlines(keepends=True),
            to_toml(b.body).splitlines(keepends=True),
            fromfile=f"{a.name} v{a.version}",
            tofile=f"{b.name} v{b.version}",
        )
    )
