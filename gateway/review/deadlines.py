"""Review deadlines: how long a held output may wait for a reviewer under a policy, and what happens
then. Configuration (the `[review.deadlines.POLICY]` tables of the settings file), parsed and checked
here; the maintenance sweep applies them through `queue.apply_deadlines`."""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any


class DeadlineAction(enum.StrEnum):
    """reject: no text, ever (the safe default); approve: the text is released as generated (for
    policies whose holds are precautionary); escalate: the item goes to the admins' queue and waits."""

    REJECT = "reject"
    APPROVE = "approve"
    ESCALATE = "escalate"


@dataclass(frozen=True)
class Deadline:
    after: timedelta
    action: DeadlineAction


class DeadlineConfigError(ValueError):
    """A deadline table is malformed; the message names the key."""


def parse_deadlines(table: Any) -> dict[str, Deadline]:
    """`{"default": {"after_s": 3600, "action": "escalate"}, ...}` -> policy name -> Deadline."""
    if not isinstance(table, Mapping):
        raise DeadlineConfigError("review.deadlines must be a table of policies")
    deadlines = {}
    for policy, entry in table.items():
        where = f"review.deadlines.{policy}"
        if not isinstance(entry, Mapping) or set(entry) - {"after_s", "action"} or "after_s" not in entry:
            raise DeadlineConfigError(f"{where}: a table with after_s and optional action")
        after = entry["after_s"]
        if (
            isinstance(after, bool)
            or not isinstance(after, int | float)
            or not math.isfinite(after)
            or after <= 0
        ):
            raise DeadlineConfigError(f"{where}.after_s: a positive number of seconds, got {after!r}")
        try:
            action = DeadlineAction(entry.get("action", DeadlineAction.REJECT.value))
        except ValueError:
            choices = ", ".join(a.value for a in DeadlineAction)
            raise DeadlineConfigError(
                f"{where}.action: one of {choices}, got {entry.get('action')!r}"
            ) from None
        deadlines[str(policy)] = Deadline(after=timedelta(seconds=float(after)), action=action)
    return deadlines
