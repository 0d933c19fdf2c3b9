"""What a client may learn about a held output: ``get_result`` behind GetResult/WatchResult.

Separate from the queue's write paths because it is the one read the client side makes; the text is
returned only once a reviewer approved or edited it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.review.errors import NotFound
from gateway.review.prompt_runs import generated_output, is_prompt_output
from gateway.storage.models import GenerationOutput, OutputStatus, ReviewState


class ResultState(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    EDITED = "edited"
    REJECTED = "rejected"
    # Blocked by the policy and not (yet) appealed: no text; Appeal puts it in the review queue.
    BLOCKED = "blocked"


@dataclass(frozen=True, slots=True)
class ResultView:
    """What a client may learn about a held output: its state, and text only once released."""

    ticket: str
    state: ResultState
    text: str | None
    request_id: str
    prompt_index: int
    sequence_index: int
    decided_at: datetime | None


def get_result(*, session: Session, ticket: str, tenant: str | None = None) -> ResultView:
    """The result behind ``ticket``. With ``tenant``, another tenant's ticket is NotFound (not 403:
    a client learns nothing about tickets it does not own)."""
    output = session.scalars(select(GenerationOutput).where(GenerationOutput.ticket == ticket)).one_or_none()
    if output is None or (tenant is not None and output.request.tenant != tenant):
        raise NotFound(f"no result for ticket {ticket!r}")
    item = output.review_item
    if item is None and output.status == OutputStatus.BLOCKED:
        return ResultView(
            ticket=ticket,
            state=ResultState.BLOCKED,
            text=None,
            request_id=output.request.request_id,
            prompt_index=output.prompt_index,
            sequence_index=output.sequence_index,
            decided_at=None,
        )
    if item is not None and item.state == ReviewState.APPROVED and is_prompt_output(output):
        return _approved_prompt(session, output, item.decided_at)
    review_state = item.state if item is not None else ReviewState.PENDING
    state = {
        ReviewState.APPROVED: ResultState.APPROVED,
        ReviewState.EDITED: ResultState.EDITED,
        ReviewState.REJECTED: ResultState.REJECTED,
    }.get(review_state, ResultState.PENDING)
    released = state in (ResultState.APPROVED, ResultState.EDITED)
    return ResultView(
        ticket=ticket,
        state=state,
        text=output.released_text if released else None,
        request_id=output.request.request_id,
        prompt_index=output.prompt_index,
        sequence_index=output.sequence_index,
        decided_at=item.decided_at if item is not None else None,
    )


_GENERATED_STATE = {
    OutputStatus.RELEASED: ResultState.APPROVED,
    OutputStatus.APPROVED: ResultState.APPROVED,
    OutputStatus.EDITED: ResultState.EDITED,
    OutputStatus.REJECTED: ResultState.REJECTED,
    OutputStatus.BLOCKED: ResultState.BLOCKED,
}


def _approved_prompt(session: Session, output: GenerationOutput, approved_at: datetime | None) -> ResultView:
    """A held prompt a reviewer approved: pending until its generation ran, then the outcome of the
    generated output (released or masked: APPROVED with its text; held again: PENDING until that review;
    blocked: BLOCKED), under the prompt's ticket and indexes."""
    generated = generated_output(session=session, output=output)
    state = ResultState.PENDING
    if generated is not None:
        state = _GENERATED_STATE.get(generated.status, ResultState.PENDING)
    decided_at = approved_at
    if generated is not None and generated.review_item is not None and generated.review_item.decided_at:
        decided_at = generated.review_item.decided_at
    return ResultView(
        ticket=output.ticket or "",
        state=state,
        text=generated.released_text
        if generated is not None and state in (ResultState.APPROVED, ResultState.EDITED)
        else None,
        request_id=output.request.request_id,
        prompt_index=output.prompt_index,
        sequence_index=output.sequence_index,
        decided_at=decided_at,
    )
