"""A `[since, until)` time window, as every filtered read takes it (audit queries, the policy report):
one rule for what a valid window is, so that the CLI, gRPC and the web pages refuse the same ones."""

from __future__ import annotations

from datetime import datetime

from gateway.errors import InvalidArgument


def check_window(since: datetime | None, until: datetime | None) -> None:
    """InvalidArgument naming the field, unless both ends are aware datetimes (or open) and since < until."""
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise InvalidArgument(name, "must be timezone-aware")
    if since is not None and until is not None and since >= until:
        raise InvalidArgument("until", "must be after since")
