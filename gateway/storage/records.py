"""Recording generation requests and their outputs, with the release rule enforced in one place.

``record_output`` derives the output's status and ``released_text`` from the moderation action, so no
caller can store a held or blocked output with client-visible text. For ``hold``, call
:func:`gateway.review.queue.create_review_item` next, in the same transaction (it issues the ticket).

These helpers do not write audit events: the generation service appends ``request.received``,
``generation.completed``, ``moderation.decided`` with the context it has (latency, batch, scorer
versions), in the same transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from gateway.errors import InvalidArgument
from gateway.storage.base import utcnow
from gateway.storage.models import (
    GenerationOutput,
    GenerationRequest,
    ModerationAction,
    OutputStatus,
    RequestStatus,
)

_STATUS_FOR_ACTION: dict[ModerationAction, OutputStatus] = {
    ModerationAction.RELEASE: OutputStatus.RELEASED,
    ModerationAction.MASK: OutputStatus.RELEASED,
    ModerationAction.HOLD: OutputStatus.HELD,
    ModerationAction.BLOCK: OutputStatus.BLOCKED,
}


def record_request(
    *,
    session: Session,
    request_id: str,
    tenant: str,
    model_id: str,
    prompt_count: int,
    parameters: dict[str, Any] | None = None,
    api_key_id: str | None = None,
    model_revision: str | None = None,
) -> GenerationRequest:
    """Insert a request in state ``received`` and flush (its ``id`` is then available)."""
    if prompt_count < 1:
        raise InvalidArgument("a request needs at least one prompt")
    request = GenerationRequest(
        request_id=request_id,
        tenant=tenant,
        api_key_id=api_key_id,
        model_id=model_id,
        model_revision=model_revision,
        parameters=parameters or {},
        prompt_count=prompt_count,
        status=RequestStatus.RECEIVED,
    )
    session.add(request)
    session.flush()
    return request


def set_request_status(
    *,
    session: Session,
    request: GenerationRequest,
    status: RequestStatus,
    error: str | None = None,
    now: datetime | None = None,
) -> GenerationRequest:
    """Move a request to ``status`` (``error`` only for failed)."""
    request.status = RequestStatus(status)
    request.error = error
    request.updated_at = now or utcnow()
    session.flush()
    return request


def record_output(
    *,
    session: Session,
    request: GenerationRequest,
    prompt_index: int,
    sequence_index: int,
    prompt: str,
    generated_text: str,
    action: ModerationAction | str,
    policy_name: str,
    policy_version: str,
    masked_text: str | None = None,
    scores: dict[str, Any] | None = None,
    reasons: list[Any] | None = None,
    spans: list[Any] | None = None,
    scorers: list[Any] | None = None,
    identity_checks: list[Any] | None = None,
    shadow: list[Any] | None = None,
    prompt_tokens: int = 0,
    generated_tokens: int = 0,
    finish_reason: str | None = None,
) -> GenerationOutput:
    """Insert one moderated output. release: the text is released as is; mask: ``masked_text`` is
    released (required); hold and block: nothing is released."""
    action = ModerationAction(action)
    if action is ModerationAction.MASK and masked_text is None:
        raise InvalidArgument("a masked output needs masked_text")
    if action is not ModerationAction.MASK and masked_text is not None:
        raise InvalidArgument(f"masked_text is only for mask, not {action.value}")
    released = {ModerationAction.RELEASE: generated_text, ModerationAction.MASK: masked_text}.get(action)
    output = GenerationOutput(
        request=request,
        prompt_index=prompt_index,
        sequence_index=sequence_index,
        prompt=prompt,
        generated_text=generated_text,
        released_text=released,
        scores=scores or {},
        reasons=reasons or [],
        spans=spans or [],
        action=action,
        status=_STATUS_FOR_ACTION[action],
        policy_name=policy_name,
        policy_version=policy_version,
        scorers=scorers or [],
        identity_checks=identity_checks or [],
        shadow=shadow or [],
        prompt_tokens=prompt_tokens,
        generated_tokens=generated_tokens,
        finish_reason=finish_reason,
    )
    session.add(output)
    session.flush()
    return output
