"""Seeding recorded outputs, and a held output with its review item, as the gateway's recorder leaves them.

Why one place: tests that need "an output in the database" or "something in the review queue" wrote the
same calls (`record_request`, `record_output`, `create_review_item`) by hand; a change to what an output
must carry is now made here once. Both work inside the caller's session, so a test can seed in a
transaction it rolls back or on an engine of its own; `tests/db/conftest.py:add_held` commits one per call.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from gateway.review import create_review_item
from gateway.storage.models import GenerationOutput, GenerationRequest, ModerationAction, ReviewItem
from gateway.storage.records import record_output, record_request

__all__ = ["hold_output", "record_one"]


def record_one(
    session: Session,
    *,
    request: GenerationRequest | None = None,
    request_id: str = "r",
    tenant: str = "acme",
    model_id: str = "m",
    parameters: dict[str, Any] | None = None,
    prompt_index: int = 0,
    sequence_index: int = 0,
    action: ModerationAction | str = "release",
    text: str = "t",
    prompt: str = "p",
    policy_name: str = "default",
    policy_version: str = "1",
    **output: Any,
) -> GenerationOutput:
    """Record one output (flushed, not committed), of `request` or of a new one-prompt request.
    `output` passes further `record_output` fields (scores, reasons, masked text, finish reason, ...)."""
    if request is None:
        request = record_request(
            session=session,
            request_id=request_id,
            tenant=tenant,
            model_id=model_id,
            prompt_count=1,
            parameters=parameters,
        )
    return record_output(
        session=session,
        request=request,
        prompt_index=prompt_index,
        sequence_index=sequence_index,
        prompt=prompt,
        generated_text=text,
        action=action,
        policy_name=policy_name,
        policy_version=policy_version,
        **output,
    )


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
    held = record_one(
        session,
        request_id=request_id,
        tenant=tenant,
        model_id=model_id,
        parameters=parameters,
        action="hold",
        text=text,
        prompt=prompt,
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
