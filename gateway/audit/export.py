"""Audit events as text for other programs (the CLI's CSV, the admin page's CSV download): one rule for
what a spreadsheet must not run, and one spelling of the payload."""

from __future__ import annotations

import json
from typing import Any

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def defuse_formula(value: Any) -> Any:
    """A ``'`` before text a spreadsheet would run as a formula (OWASP "CSV injection": request ids and
    actors can come from API clients); other values unchanged."""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def payload_json(payload: Any) -> str:
    """The payload as one JSON text, keys sorted, non-ASCII kept (the form both exports write)."""
    return json.dumps(payload, ensure_ascii=False, sort_keys=True)
