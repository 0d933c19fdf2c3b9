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
