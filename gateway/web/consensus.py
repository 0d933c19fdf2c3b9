"""What the pages show of several reviewers per item (gateway/review/consensus.py), built inside a
transaction like the other read models (gateway/web/data.py).

A reviewer sees how many verdicts an item needs and has, never what they say: the verdicts are shown
only to an admin on an escalated item (the admin decides it, and needs to know why it came to them).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from gateway.review import consensus as cons
from gateway.storage.models import Reviewer, ReviewItem, ReviewState

_OPEN = (ReviewState.PENDING, ReviewState.CLAIMED)


@dataclass(frozen=True)
class VerdictView:
    reviewer: str
    decision: str
    edited_text: str | None  # a reviewer's text: untrusted, escaped like the model's
    reason: str | None
    at: datetime


@dataclass(frozen=True)
class ConsensusView:
    required: int  # verdicts the item needs now (1 once escalated: the admin decides alone)
    given: int
    rule: str | None
    mine: bool  # the viewer gave one of them
    verdicts: list[VerdictView]  # empty unless the viewer is an admin and the item is escalated


def consensus_view(
    session: Session, reviewer: Reviewer, item: ReviewItem, consensus: Mapping[str, cons.Consensus]
) -> ConsensusView | None:
    """None for an item that neither needs nor has several verdicts."""
    wanted = cons.required(item, consensus) if item.state in _OPEN else None
    given = cons.verdicts_of(session=session, item_id=item.id)
    if wanted is None and not given:
        return None
    shown = item.escalated and reviewer.is_admin
    return ConsensusView(
        required=wanted.verdicts if wanted is not None else 1,
        given=len(given),
        rule=wanted.rule.value if wanted is not None else None,
        mine=cons.has_given(session=session, item_id=item.id, reviewer=reviewer),
        verdicts=[VerdictView(name, v.decision, v.edited_text, v.reason, v.created_at) for name, v in given]
        if shown
        else [],
    )
