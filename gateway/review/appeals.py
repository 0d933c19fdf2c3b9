"""Appeals: a client whose output was blocked asks a human to look again.

The blocked output enters the review queue marked as an appeal; from then on it is exactly like a held
output: the client learns the outcome through GetResult/WatchResult, and text only if a reviewer approves.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.errors import FailedPrecondition, InvalidArgument, NotFound
from gateway.review.queue import create_review_item
from gateway.storage.models import GenerationOutput, OutputStatus

MAX_REASON_CHARS = 2000


def appeal(*, session: Session, ticket: str, tenant: str, reason: str, actor: str) -> GenerationOutput:
    """Queues the blocked output behind `ticket` (owned by `tenant`) for review, as an appeal."""
    if len(reason) > MAX_REASON_CHARS:
        raise InvalidArgument("reason", f"at most {MAX_REASON_CHARS} characters, got {len(reason)}")
    output = session.scalars(select(GenerationOutput).where(GenerationOutput.ticket == ticket)).one_or_none()
    if output is None or output.request.tenant != tenant:
        raise NotFound(f"no result for ticket {ticket!r}")
    if output.review_item is not None:
        raise FailedPrecondition(f"ticket {ticket!r} is already in the review queue")
    if output.status != OutputStatus.BLOCKED:
        raise FailedPrecondition(
            f"only blocked outputs can be appealed; ticket {ticket!r} is {output.status.value}"
        )
    create_review_item(session=session, output=output, actor=actor, appeal_reason=reason)
    return output
