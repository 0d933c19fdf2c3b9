"""The webhook event types a tenant can subscribe to (docs/operations.md, "Webhooks").

`review.deadline_passed`: a held output waited longer than its policy's review deadline, and the
deadline's action (reject, approve or escalate) was applied; `state` says the outcome.
"""

from __future__ import annotations

OUTPUT_HELD = "output.held"
OUTPUT_BLOCKED = "output.blocked"
REVIEW_DECIDED = "review.decided"
APPEAL_OPENED = "appeal.opened"
APPEAL_DECIDED = "appeal.decided"
REVIEW_DEADLINE_PASSED = "review.deadline_passed"

EVENT_TYPES: tuple[str, ...] = (
    OUTPUT_HELD,
    OUTPUT_BLOCKED,
    REVIEW_DECIDED,
    APPEAL_OPENED,
    APPEAL_DECIDED,
    REVIEW_DEADLINE_PASSED,
)
