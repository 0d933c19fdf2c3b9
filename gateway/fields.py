"""Ids, names and filters from outside (gRPC requests, web URLs and forms), checked at the edge.

One rule for every front door, applied before a value reaches the database: PostgreSQL refuses NUL in
any query parameter (the call failed as INTERNAL), and a control character in an id, a name or a filter
is never what a caller meant (and would be printed raw in logs and tables). A malformed value is
`InvalidArgument` naming the field as the client spelled it; a well-formed value that names nothing is
left to the lookup (NOT_FOUND).

Free text that is stored (a reviewer's reason, an edited text, an appeal) is checked where it is used
(gateway/review/queue.py, gateway/rpc/services/results.py): it may hold newlines, only NUL is refused.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from gateway.errors import InvalidArgument

__all__ = ["MAX_TEXT_CHARS", "has_control", "is_record_id", "record_id", "text", "texts"]

# Names, tenants and filters: the columns they are compared with hold at most 128 characters.
MAX_TEXT_CHARS = 128

# What `gateway.storage.base.new_id` gives every row: a UUID's canonical text, lower case.
_RECORD_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# Unicode's control characters (category Cc): C0 (NUL included), DEL and C1.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def is_record_id(value: str) -> bool:
    """Whether `value` has the form of a row id the gateway made (review items, QA samples, webhooks)."""
    return _RECORD_ID.fullmatch(value) is not None


def record_id(field: str, value: str) -> str:
    """`value` if it has the form of a row id the gateway made, else InvalidArgument naming `field`."""
    if not is_record_id(value):
        raise InvalidArgument(
            field, "must be an id as the gateway gives it: a UUID in lower case (8-4-4-4-12 hex digits)"
        )
    return value


def has_control(value: str) -> bool:
    return _CONTROL.search(value) is not None


def text(field: str, value: str, *, max_chars: int = MAX_TEXT_CHARS) -> str:
    """`value` unless it is longer than `max_chars` or holds a control character (NUL, ESC, newline,
    DEL, C1): InvalidArgument naming `field`. An empty value passes (an unset filter)."""
    if len(value) > max_chars:
        raise InvalidArgument(field, f"must be at most {max_chars} characters, got {len(value)}")
    if has_control(value):
        raise InvalidArgument(field, "must not contain control characters (NUL, newlines, escapes)")
    return value


def texts(field: str, values: Iterable[str], *, max_chars: int = MAX_TEXT_CHARS) -> list[str]:
    """Each of `values` checked by `text`; a bad one is named with its index (`field[2]`)."""
    return [text(f"{field}[{i}]", value, max_chars=max_chars) for i, value in enumerate(values)]
