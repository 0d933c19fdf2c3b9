"""The ReviewService servicer: the review queue for programmatic reviewers.

The caller's API key must be bound to a reviewer account (`modgate keys create --scope review
--reviewer NAME`); that account claims and decides, and its role decides whether escalated items are
visible. The generated text is shown only to the holder of a claim.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import grpc
from sqlalchemy.orm import Session, sessionmaker

from gateway import fields
from gateway.api.v1 import moderation_pb2 as mod_pb
from gateway.api.v1 import review_pb2 as rv_pb
from gateway.api.v1 import review_pb2_grpc as rv_grpc
from gateway.errors import Forbidden, InvalidArgument
from gateway.pipeline.callers import current_caller
from gateway.review import consensus as cons
from gateway.review import queue
from gateway.review.prompt_runs import is_prompt_output
from gateway.review.reviewers import usernames
from gateway.rpc.services.convert import timestamp
from gateway.storage.models import Reviewer, ReviewerVerdict, ReviewItem, ReviewState
from gateway.storage.tx import in_transaction

DEFAULT_LIST_LIMIT = 100
MAX_LIST_LIMIT = 500

_STATE_TO_PB = {
    ReviewState.PENDING: rv_pb.REVIEW_STATE_PENDING,
    ReviewState.CLAIMED: rv_pb.REVIEW_STATE_CLAIMED,
    ReviewState.APPROVED: rv_pb.REVIEW_STATE_APPROVED,
    ReviewState.EDITED: rv_pb.REVIEW_STATE_EDITED,
    ReviewState.REJECTED: rv_pb.REVIEW_STATE_REJECTED,
}
_STATE_FROM_PB = {v: k for k, v in _STATE_TO_PB.items()}
_DECISION_FROM_PB = {
    rv_pb.REVIEW_DECISION_APPROVE: queue.Decision.APPROVE,
    rv_pb.REVIEW_DECISION_EDIT: queue.Decision.EDIT,
    rv_pb.REVIEW_DECISION_REJECT: queue.Decision.REJECT,
}
_DECISION_TO_PB = {v: k for k, v in _DECISION_FROM_PB.items()}
_ACTION_TO_PB = {
    "release": mod_pb.MODERATION_ACTION_RELEASED,
    "mask": mod_pb.MODERATION_ACTION_MASKED,
    "hold": mod_pb.MODERATION_ACTION_HELD,
    "block": mod_pb.MODERATION_ACTION_BLOCKED,
}


def _lease(seconds: int) -> int:
    """0 (unset in the request) is the default lease; the queue checks the range."""
    return seconds or queue.DEFAULT_LEASE_SECONDS


def item_to_pb(
    item: ReviewItem,
    *,
    names: Mapping[str, str],
    with_text: bool,
    verdicts_required: int = 1,
    verdicts_given: int = 0,
    verdicts: Sequence[tuple[str, ReviewerVerdict]] = (),
) -> rv_pb.ReviewItem:
    """A pure conversion: `names` (reviewer id -> username, `reviewers.usernames`), the verdict counts and
    the verdicts an admin may see (`consensus.verdicts_of`) are read by the caller."""
    output = item.output
    msg = rv_pb.ReviewItem(
        id=item.id,
        ticket=output.ticket or "",
        state=_STATE_TO_PB[item.state],
        version=item.version,
        escalated=item.escalated,
        priority=item.priority,
        tenant=output.request.tenant,
        request_id=output.request.request_id,
        scores={k: float(v) for k, v in (output.scores or {}).items() if isinstance(v, int | float)},
        policy=output.policy_name,
        policy_version=output.policy_version,
        claimed_by=names.get(item.claimed_by or "", ""),
        decided_by=names.get(item.decided_by or "", ""),
        decision_reason=item.decision_reason or "",
        edited_text=item.edited_text or "",
        appeal=item.appeal,
        appeal_reason=item.appeal_reason or "",
        verdicts_required=verdicts_required,
        verdicts_given=verdicts_given,
        prompt_item=is_prompt_output(output),
    )
    for name, verdict in verdicts:
        pb = rv_pb.ReviewVerdict(
            reviewer=name,
            decision=_DECISION_TO_PB[queue.Decision(verdict.decision)],
            edited_text=verdict.edited_text or "",
            reason=verdict.reason or "",
        )
        pb.created_at.FromDatetime(verdict.created_at)
        msg.verdicts.append(pb)
    for field, value in (
        ("lease_expires_at", item.lease_expires_at),
        ("created_at", item.created_at),
        ("decided_at", item.decided_at),
    ):
        ts = timestamp(value)
        if ts is not None:
            getattr(msg, field).CopyFrom(ts)
    if with_text:
        msg.prompt = output.prompt
        msg.generated_text = output.generated_text
        msg.reasons.extend(_reason(r) for r in output.reasons or [])
    return msg


def _with_names(
    session: Session, item: ReviewItem, reviewer: Reviewer, consensus: Mapping[str, cons.Consensus]
) -> rv_pb.ReviewItem:
    """One item, with its text (the claimant's view); the other reviewers' verdicts only for an admin on
    an escalated item, never for a reviewer who has yet to give theirs."""
    given = cons.verdict_counts(session=session, item_ids=[item.id]).get(item.id, 0)
    shown = item.escalated and reviewer.is_admin and item.state == ReviewState.CLAIMED
    return item_to_pb(
        item,
        names=usernames(session=session, items=[item]),
        with_text=True,
        verdicts_required=_required(item, consensus),
        verdicts_given=given,
        verdicts=cons.verdicts_of(session=session, item_id=item.id) if shown else (),
    )


def _required(item: ReviewItem, consensus: Mapping[str, cons.Consensus]) -> int:
    wanted = cons.required(item, consensus) if item.state in queue.OPEN_STATES else None
    return wanted.verdicts if wanted is not None else 1


def _reason(r: dict[str, Any]) -> rv_pb.ReviewReason:
    return rv_pb.ReviewReason(
        category=str(r.get("category", "")),
        score=float(r.get("score", 0.0)),
        threshold=float(r.get("threshold", 0.0)),
        action=_ACTION_TO_PB.get(str(r.get("action", "")), mod_pb.MODERATION_ACTION_UNSPECIFIED),
        scorer=str(r.get("scorer", "")),
        excerpt=str(r.get("excerpt", "")),
    )


class ReviewServicer(rv_grpc.ReviewServiceServicer):
    def __init__(
        self, *, sessions: sessionmaker[Session], consensus: Mapping[str, cons.Consensus] | None = None
    ) -> None:
        self._sessions = sessions
        self._consensus = dict(consensus or {})

    @staticmethod
    def _reviewer(session: Session) -> Reviewer:
        caller = current_caller()
        reviewer = session.get(Reviewer, caller.reviewer_id) if caller.reviewer_id else None
        if reviewer is None:
            raise Forbidden("this API key is not bound to a reviewer account (keys create --reviewer)")
        if reviewer.disabled:  # every call, listing included: a disabled account sees nothing
            raise Forbidden(f"reviewer account {reviewer.username!r} is disabled")
        return reviewer

    async def ListItems(self, request: rv_pb.ListItemsRequest, context: grpc.aio.ServicerContext) -> Any:
        limit = request.limit or DEFAULT_LIST_LIMIT
        if not 1 <= limit <= MAX_LIST_LIMIT:
            raise InvalidArgument("limit", f"must be between 1 and {MAX_LIST_LIMIT}, got {limit}")
        try:
            states = {_STATE_FROM_PB[s] for s in request.states} or {ReviewState.PENDING, ReviewState.CLAIMED}
        except KeyError:
            raise InvalidArgument("states", "contains an unknown state") from None

        def work(session: Session) -> rv_pb.ListItemsResponse:
            reviewer = self._reviewer(session)
            items = queue.list_items(
                session=session, states=states, include_escalated=reviewer.is_admin, limit=limit
            )
            names = usernames(session=session, items=items)
            given = cons.verdict_counts(session=session, item_ids=[i.id for i in items])
            return rv_pb.ListItemsResponse(
                items=[
                    item_to_pb(
                        i,
                        names=names,
                        with_text=False,
                        verdicts_required=_required(i, self._consensus),
                        verdicts_given=given.get(i.id, 0),
                    )
                    for i in items
                ]
            )

        return await in_transaction(self._sessions, work)

    async def ClaimNext(self, request: rv_pb.ClaimNextRequest, context: grpc.aio.ServicerContext) -> Any:
        lease = _lease(request.lease_seconds)

        def work(session: Session) -> rv_pb.ClaimNextResponse:
            reviewer = self._reviewer(session)
            item = queue.claim_next(session=session, reviewer=reviewer, lease_seconds=lease)
            if item is None:
                return rv_pb.ClaimNextResponse()
            return rv_pb.ClaimNextResponse(item=_with_names(session, item, reviewer, self._consensus))

        return await in_transaction(self._sessions, work)

    async def RenewLease(self, request: rv_pb.RenewLeaseRequest, context: grpc.aio.ServicerContext) -> Any:
        item_id = fields.record_id("item_id", request.item_id)
        lease = _lease(request.lease_seconds)

        def work(session: Session) -> rv_pb.ReviewItem:
            reviewer = self._reviewer(session)
            item = queue.renew_lease(session=session, item_id=item_id, reviewer=reviewer, lease_seconds=lease)
            return _with_names(session, item, reviewer, self._consensus)

        return await in_transaction(self._sessions, work)

    async def Decide(self, request: rv_pb.DecideRequest, context: grpc.aio.ServicerContext) -> Any:
        item_id = fields.record_id("item_id", request.item_id)
        decision = _DECISION_FROM_PB.get(request.decision)
        if decision is None:
            raise InvalidArgument("decision", "must be APPROVE, EDIT or REJECT")

        def work(session: Session) -> rv_pb.ReviewItem:
            reviewer = self._reviewer(session)
            item = queue.decide(
                session=session,
                item_id=item_id,
                reviewer=reviewer,
                expected_version=request.expected_version,
                decision=decision,
                edited_text=request.edited_text if decision is queue.Decision.EDIT else None,
                reason=request.reason or None,
                consensus=self._consensus,
            )
            return _with_names(session, item, reviewer, self._consensus)

        return await in_transaction(self._sessions, work)
