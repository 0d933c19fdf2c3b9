"""Seeding a held output and its review item, as the gateway's recorder leaves them.

Why one helper: tests that need "something in the review queue" wrote the same three calls
(`record_request`, `record_output(action="hold")`, `create_review_item`) by hand; a change to what a held
output must carry is now made here once. It works inside the caller's session, so a test can seed in a
transaction it rolls back or on an engine of its own; `tests/db/conftest.py:add_held` commits one per call.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from gateway.review import create_review_item
from gateway.storage.models import ReviewItem
from gateway.storage.records import record_output, record_request

__all__ = ["hold_output"]


def hold_output(
    session: Session,
    *,
    request_id: str,
    tenant: str = "acme",
    model_id: str = "m",
    text: str = "withheld words",
    prompt: str = "p",
    policy_name: str = "default",
    policy_version: str = "1",
    escalated: bool = False,
    priority: float | None = None,
    actor: str = "system",
    appeal_reason: str | None = None,
    parameters: dict[str, Any] | None = None,
    **output: Any,
) -> ReviewItem:
    """Record a one-prompt request, its held output and the output's review item (flushed, not committed).
    `parameters` are the request's sampling parameters; `output` passes further `record_output` fields
    (scores, reasons, identity checks, ...)."""
    request = record_request(
        session=session,
        request_id=request_id,
        tenant=tenant,
        model_id=model_id,
        prompt_count=1,
        parameters=parameters,
    )
    held = record_output(
        session=session,
        request=request,
        prompt_index=0,
        sequence_index=0,
        prompt=prompt,
        generated_text=text,
        action="hold",
        policy_name=policy_name,
        policy_version=policy_version,
        **output,
    )
    return create_review_item(
        session=session,
        output=held,
        escalated=escalated,
        priority=priority,
        actor=actor,
        appeal_reason=appeal_reason,
    )
