"""The human review queue: hold an output, claim it with a lease, decide it, read the result.

Every state change is a conditional UPDATE (``WHERE id = :id AND version = :seen AND <still valid>``)
that bumps ``version``; when it matches no row, someone else won and the caller gets a precise error.
On PostgreSQL the candidate row is also locked first (``FOR UPDATE SKIP LOCKED`` when claiming, so
concurrent reviewers and gateway replicas each get a different item without waiting on each other).
On SQLite, :func:`gateway.storage.make_engine` begins every transaction with ``BEGIN IMMEDIATE``; the
conditional UPDATE keeps the functions race-free even on an engine configured otherwise.

Each transition appends its audit event in the same transaction, so the queue and the audit log can
never disagree. Audit payloads carry ids, versions and reasons, never generated text nor a hash of withheld
text (only the hash of an edited text, which is released).
Functions take ``session=`` and never commit (the caller owns ``with Session() as s, s.begin():``).
"""

from __future__ import annotations

import enum
import hashlib
import secrets
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from gateway.audit import append as audit_append
from gateway.audit import events
from gateway.review import consensus as cons
from gateway.review.deadlines import Deadline, DeadlineAction
from gateway.review.errors import (
    AlreadyDecided,
    AlreadyExists,
    Forbidden,
    InvalidDecision,
    LeaseExpired,
    NotClaimant,
    NotFound,
    StaleVersion,
)
from gateway.review.prompt_runs import is_prompt_output, settle_prompt
from gateway.review.results import ResultState, ResultView, get_result
from gateway.storage.base import utcnow
from gateway.storage.engine import is_postgresql
from gateway.storage.models import (
    DECIDED_STATES,
    GenerationOutput,
    OutputStatus,
    Reviewer,
    ReviewerVerdict,
    ReviewItem,
    ReviewState,
)
from gateway.webhooks import events as webhook_events
from gateway.webhooks.outbox import enqueue as enqueue_webhook

__all__ = [
    "DEFAULT_LEASE_SECONDS",
    "Decision",
    "ResultState",
    "ResultView",
    "claim_next",
    "create_review_item",
    "decide",
    "escalate",
    "get_item",
    "get_result",
    "list_items",
    "new_ticket",
    "release_expired",
    "renew_lease",
]

DEFAULT_LEASE_SECONDS = 300
MIN_LEASE_SECONDS = 10  # a heartbeat every few seconds would be load, not review
MAX_LEASE_SECONDS = 3600
_CLAIM_CANDIDATES = 5
OPEN_STATES: frozenset[ReviewState] = frozenset({ReviewState.PENDING, ReviewState.CLAIMED})


class Decision(enum.StrEnum):
    APPROVE = "approve"
    EDIT = "edit"
    REJECT = "reject"


_DECISION_EFFECT: dict[Decision, tuple[ReviewState, OutputStatus, str]] = {
    Decision.APPROVE: (ReviewState.APPROVED, OutputStatus.APPROVED, events.REVIEW_APPROVED),
    Decision.EDIT: (ReviewState.EDITED, OutputStatus.EDITED, events.REVIEW_EDITED),
    Decision.REJECT: (ReviewState.REJECTED, OutputStatus.REJECTED, events.REVIEW_REJECTED),
}


def new_ticket() -> str:
    """An unguessable ticket id (128 random bits): a client can only poll results it was given."""
    return "tkt_" + secrets.token_hex(16)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _audit(session: Session, event_type: str, actor: str, item: ReviewItem, **payload: Any) -> None:
    output = item.output
    audit_append(
        session=session,
        event_type=event_type,
        actor=actor,
        tenant=output.request.tenant,
        request_id=output.request.request_id,
        ticket=output.ticket,
        action=event_type.rpartition(".")[2],
        payload={"item_id": item.id, "output_id": output.id, "version": item.version, **payload},
    )


def _actor(reviewer: Reviewer) -> str:
    return f"reviewer:{reviewer.username}"


def _check_active(reviewer: Reviewer) -> None:
    if reviewer.disabled:
        raise Forbidden(f"reviewer {reviewer.username!r} is disabled")


# A decision's words are stored with the item and shown to other reviewers; the edited text is released to
# the client. Bounded, and without NUL (PostgreSQL's text type refuses it), whoever decides (gRPC, web).
MAX_REASON_CHARS = 2000
MAX_EDITED_TEXT_CHARS = 20_000


def _check_text(field: str, value: str | None, limit: int) -> None:
    if value is None:
        return
    if len(value) > limit:
        raise InvalidDecision(field, f"at most {limit} characters, got {len(value)}")
    if "\x00" in value:
        raise InvalidDecision(field, "must not contain NUL characters")


def _check_lease(lease_seconds: int) -> timedelta:
    """The one rule for a lease's length, whoever asks (gRPC, the web queue)."""
    if not MIN_LEASE_SECONDS <= lease_seconds <= MAX_LEASE_SECONDS:
        raise InvalidDecision(
            "lease_seconds",
            f"must be between {MIN_LEASE_SECONDS} and {MAX_LEASE_SECONDS}, got {lease_seconds}",
        )
    return timedelta(seconds=lease_seconds)


def create_review_item(
    *,
    session: Session,
    output: GenerationOutput,
    escalated: bool = False,
    priority: float | None = None,
    actor: str = "system",
    appeal_reason: str | None = None,
) -> ReviewItem:
    """Hold ``output`` for review: give it a ticket, withdraw any released text, queue an item.

    ``priority`` defaults to the output's highest numeric score (the most toxic is looked at first);
    ``escalated`` items are visible to admins only. ``appeal_reason`` (possibly empty) marks the item
    as a client's appeal of a blocked output.
    """
    if session.scalar(select(ReviewItem.id).where(ReviewItem.output_id == output.id)) is not None:
        raise AlreadyExists(f"output {output.id} is already in the review queue")
    if priority is None:
        numbers = [v for v in (output.scores or {}).values() if isinstance(v, int | float)]
        priority = float(max(numbers, default=0.0))
    if output.ticket is None:
        output.ticket = new_ticket()
    output.status = OutputStatus.HELD
    output.released_text = None
    appeal = appeal_reason is not None
    item = ReviewItem(
        output=output,
        priority=priority,
        escalated=escalated,
        state=ReviewState.PENDING,
        appeal=appeal,
        appeal_reason=appeal_reason or None,
    )
    session.add(item)
    session.flush()
    event = events.REVIEW_APPEALED if appeal else events.REVIEW_HELD
    _audit(session, event, actor, item, priority=priority, escalated=escalated)
    _webhook(session, item, webhook_events.APPEAL_OPENED if appeal else webhook_events.OUTPUT_HELD)
    return item


def _webhook(session: Session, item: ReviewItem, event_type: str) -> None:
    """The tenant's webhook event for this change, in its transaction (gateway/webhooks/outbox.py)."""
    output = item.output
    assert output.ticket is not None  # every queued output has one (create_review_item gives it)
    enqueue_webhook(
        session=session,
        event_type=event_type,
        tenant=output.request.tenant,
        ticket=output.ticket,
        request_id=output.request.request_id,
        state=output.status.value,
    )


def _claimable(now: datetime) -> Any:
    """Pending, or claimed with a lease that has run out (counts as pending)."""
    return or_(
        ReviewItem.state == ReviewState.PENDING,
        and_(ReviewItem.state == ReviewState.CLAIMED, ReviewItem.lease_expires_at <= now),
    )


def _transition(
    session: Session, item_id: str, version: int, conditions: list[Any], values: dict[str, Any]
) -> ReviewItem | None:
    """Apply ``values`` iff the row still has ``version`` and meets ``conditions``; bump the version."""
    stmt = (
        update(ReviewItem)
        .where(ReviewItem.id == item_id, ReviewItem.version == version, *conditions)
        .values(version=ReviewItem.version + 1, **values)
        .returning(ReviewItem)
    )
    return session.scalars(stmt, execution_options={"populate_existing": True}).one_or_none()


def claim_next(
    *,
    session: Session,
    reviewer: Reviewer,
    lease_seconds: int = DEFAULT_LEASE_SECONDS,
    now: datetime | None = None,
) -> ReviewItem | None:
    """Claim the most urgent claimable item for ``reviewer`` (None if the queue is empty for them).

    Order: highest priority, then oldest. Non-admins never see escalated items; nobody is handed an
    item they already gave a verdict on (gateway/review/consensus.py).
    """
    _check_active(reviewer)
    lease = _check_lease(lease_seconds)
    now = now or utcnow()
    candidates = select(ReviewItem.id, ReviewItem.version).where(_claimable(now), cons.not_given_by(reviewer))
    if not reviewer.is_admin:
        candidates = candidates.where(ReviewItem.escalated.is_(False))
    candidates = candidates.order_by(ReviewItem.priority.desc(), ReviewItem.created_at, ReviewItem.id)
    if is_postgresql(session):
        # Lock one row, skipping rows other transactions hold: no two claimers get the same item.
        candidates = candidates.limit(1).with_for_update(skip_locked=True)
    else:
        candidates = candidates.limit(_CLAIM_CANDIDATES)

    for candidate in session.execute(candidates).all():
        item = _transition(
            session,
            candidate.id,
            candidate.version,
            [_claimable(now)],
            {
                "state": ReviewState.CLAIMED,
                "claimed_by": reviewer.id,
                "claimed_at": now,
                "lease_expires_at": now + lease,
                "updated_at": now,
            },
        )
        if item is not None:
            _audit(session, events.REVIEW_CLAIMED, _actor(reviewer), item, lease_expires_at=now.isoformat())
            return item
    return None


def _load(session: Session, item_id: str) -> ReviewItem:
    """The item, row-locked on PostgreSQL (concurrent deciders queue up instead of racing)."""
    stmt = select(ReviewItem).where(ReviewItem.id == item_id).execution_options(populate_existing=True)
    if is_postgresql(session):
        stmt = stmt.with_for_update()
    item = session.scalars(stmt).one_or_none()
    if item is None:
        raise NotFound(f"review item {item_id} not found")
    return item


def _refuse_if_not_holder(item: ReviewItem, reviewer: Reviewer, now: datetime) -> None:
    """Raise the precise reason ``reviewer`` may not act on ``item`` now, if there is one."""
    if item.state in DECIDED_STATES:
        raise AlreadyDecided(f"review item {item.id} is already {item.state.value}")
    if item.state != ReviewState.CLAIMED or item.claimed_by != reviewer.id:
        raise NotClaimant(f"review item {item.id} is not claimed by {reviewer.username!r}")
    if item.lease_expires_at is None or item.lease_expires_at <= now:
        raise LeaseExpired(f"the claim on review item {item.id} has expired")
    if item.escalated and not reviewer.is_admin:
        raise Forbidden(f"review item {item.id} is escalated: an admin must decide it")


def _holder_conditions(reviewer: Reviewer, now: datetime) -> list[Any]:
    return [
        ReviewItem.state == ReviewState.CLAIMED,
        ReviewItem.claimed_by == reviewer.id,
        ReviewItem.lease_expires_at > now,
    ]


def renew_lease(
    *,
    session: Session,
    item_id: str,
    reviewer: Reviewer,
    lease_seconds: int = DEFAULT_LEASE_SECONDS,
    now: datetime | None = None,
) -> ReviewItem:
    """Heartbeat: extend the claimant's live lease to ``now + lease_seconds``.

    The version is not bumped, so the reviewer's open page stays valid. An expired lease cannot be
    renewed (someone else may have claimed the item in between): claim again instead.
    """
    _check_active(reviewer)
    lease = _check_lease(lease_seconds)
    now = now or utcnow()
    item = _load(session, item_id)
    _refuse_if_not_holder(item, reviewer, now)
    stmt = (
        update(ReviewItem)
        .where(ReviewItem.id == item_id, *_holder_conditions(reviewer, now))
        .values(lease_expires_at=now + lease, updated_at=now)
        .returning(ReviewItem)
    )
    renewed = session.scalars(stmt, execution_options={"populate_existing": True}).one_or_none()
    if renewed is None:  # changed between the read and the write (only on a non-IMMEDIATE SQLite engine)
        _refuse_if_not_holder(_load(session, item_id), reviewer, now)
        raise LeaseExpired(f"the claim on review item {item_id} has expired")
    return renewed


def release_expired(*, session: Session, now: datetime | None = None) -> int:
    """Put every claimed item whose lease ran out back to pending; return how many.

    Not needed for correctness (:func:`claim_next` already treats them as pending) but keeps the
    queue page honest and records a ``review.lease_expired`` event per item.
    """
    now = now or utcnow()
    stale = select(ReviewItem.id, ReviewItem.version, ReviewItem.claimed_by).where(
        ReviewItem.state == ReviewState.CLAIMED, ReviewItem.lease_expires_at <= now
    )
    if is_postgresql(session):
        stale = stale.with_for_update(skip_locked=True)
    released = 0
    for row in session.execute(stale).all():
        item = _transition(
            session,
            row.id,
            row.version,
            [ReviewItem.state == ReviewState.CLAIMED, ReviewItem.lease_expires_at <= now],
            {
                "state": ReviewState.PENDING,
                "claimed_by": None,
                "claimed_at": None,
                "lease_expires_at": None,
                "updated_at": now,
            },
        )
        if item is not None:
            released += 1
            _audit(session, events.REVIEW_LEASE_EXPIRED, "system", item, reviewer_id=row.claimed_by)
    return released


def decide(
    *,
    session: Session,
    item_id: str,
    reviewer: Reviewer,
    expected_version: int,
    decision: Decision | str,
    edited_text: str | None = None,
    reason: str | None = None,
    now: datetime | None = None,
    consensus: Mapping[str, cons.Consensus] | None = None,
) -> ReviewItem:
    """Approve, edit-and-approve or reject a claimed item; final.

    Only the claimant, with a live lease, deciding on the version they saw (``expected_version``, the
    item's version when claimed). approve releases the original text; edit releases ``edited_text``
    and keeps the original in ``generated_text``; reject releases nothing. A prompt item (a held
    prompt: nothing was generated) is approved or rejected only; approval queues its generation. When
    ``consensus`` (policy -> its `[review.consensus]` table) asks several verdicts of this item, this is
    one verdict: see :func:`_give_verdict`.
    """
    try:
        decision = Decision(decision)
    except ValueError:
        raise InvalidDecision(f"unknown decision {decision!r}: use approve, edit or reject") from None
    if decision is Decision.EDIT and not (edited_text and edited_text.strip()):
        raise InvalidDecision("an edit needs the edited text")
    if decision is not Decision.EDIT and edited_text is not None:
        raise InvalidDecision(f"edited_text is only for an edit, not {decision.value}")
    _check_text("reason", reason, MAX_REASON_CHARS)
    _check_text("edited_text", edited_text, MAX_EDITED_TEXT_CHARS)
    _check_active(reviewer)
    now = now or utcnow()

    item = _load(session, item_id)
    _refuse_if_not_holder(item, reviewer, now)
    if item.version != expected_version:
        raise StaleVersion(f"review item {item_id} is at version {item.version}, not {expected_version}")
    if decision is Decision.EDIT and is_prompt_output(item.output):
        raise InvalidDecision("a held prompt is approved (which runs its generation) or rejected, not edited")
    wanted = cons.required(item, consensus or {})
    if wanted is not None:
        return _give_verdict(session, item, reviewer, decision, edited_text, reason, wanted, now)

    decided = _transition(
        session,
        item_id,
        expected_version,
        _holder_conditions(reviewer, now),
        _decided_values(decision, edited_text, reason, reviewer.id, now),
    )
    if decided is None:  # lost a race after the checks above: explain it, or call it stale
        _refuse_if_not_holder(_load(session, item_id), reviewer, now)
        raise StaleVersion(f"review item {item_id} changed while deciding; reload it")
    _finish(session, decided, decision, edited_text, reason, _actor(reviewer), now)
    return decided


def _decided_values(
    decision: Decision, edited_text: str | None, reason: str | None, decided_by: str | None, now: datetime
) -> dict[str, Any]:
    return {
        "state": _DECISION_EFFECT[decision][0],
        "decided_by": decided_by,
        "decided_at": now,
        "decision_reason": reason,
        "edited_text": edited_text if decision is Decision.EDIT else None,
        "lease_expires_at": None,
        "updated_at": now,
    }


def _finish(
    session: Session,
    decided: ReviewItem,
    decision: Decision,
    edited_text: str | None,
    reason: str | None,
    actor: str,
    now: datetime,
) -> None:
    """The final decision's effects on the output, its audit events and the tenant's webhook."""
    event_type = _DECISION_EFFECT[decision][2]
    prompt = _settle_output(session, decided.output, decision, edited_text, now)
    payload: dict[str, Any] = {"reason": reason}
    if decision is Decision.EDIT and edited_text is not None:
        # The edited text is released, so its hash tells no one anything new; the original is withheld
        # text, and a hash of it would let an audit reader confirm a guess of it: never recorded.
        payload |= {"edited_sha256": _sha256(edited_text)}
    _audit(session, event_type, actor, decided, **payload)
    if decision is not Decision.REJECT and not prompt:
        _audit(session, events.RESULT_RELEASED, actor, decided)
    _webhook(
        session, decided, webhook_events.APPEAL_DECIDED if decided.appeal else webhook_events.REVIEW_DECIDED
    )


def _settle_output(
    session: Session, output: GenerationOutput, decision: Decision, edited_text: str | None, now: datetime
) -> bool:
    """The one place a decision (a reviewer's, the consensus', a deadline's) sets what an output
    releases: approve releases the generated text, edit the edited text, reject nothing; a held prompt
    releases nothing either, its approval queues the generation (gateway/review/prompt_runs.py).
    Returns whether the output is a prompt item."""
    output.status = _DECISION_EFFECT[decision][1]
    prompt = is_prompt_output(output)
    if prompt:
        settle_prompt(session=session, output=output, approved=decision is Decision.APPROVE, now=now)
    elif decision is Decision.APPROVE:
        output.released_text = output.generated_text
    elif decision is Decision.EDIT:
        output.released_text = edited_text
    else:
        output.released_text = None
    session.flush()
    return prompt


def _give_verdict(
    session: Session,
    item: ReviewItem,
    reviewer: Reviewer,
    decision: Decision,
    edited_text: str | None,
    reason: str | None,
    wanted: cons.Consensus,
    now: datetime,
) -> ReviewItem:
    """One of the several verdicts `wanted` asks for. The verdict is stored and the claim ends in one
    conditional UPDATE at the claimed version, so it counts once; then, with all verdicts in, the item
    gets its final decision (by `system:consensus`, exactly once: still the holder's transition) or is
    escalated to the admins. Until then nothing reaches the client, the tenant's webhooks or the audit
    log but the fact that a verdict was given (no text, no hash of an edit that may never be released)."""
    if cons.has_given(session=session, item_id=item.id, reviewer=reviewer):
        raise AlreadyDecided(f"{reviewer.username!r} already gave a verdict on review item {item.id}")
    votes = [
        *cons.votes_of(session=session, item_id=item.id),
        cons.Vote(decision.value, edited_text if decision is Decision.EDIT else None),
    ]
    outcome = cons.combine(wanted, votes)
    back_to_queue = {
        "state": ReviewState.PENDING,
        "claimed_by": None,
        "claimed_at": None,
        "lease_expires_at": None,
        "updated_at": now,
    }
    final = (
        Decision(outcome.decision) if outcome.kind is cons.OutcomeKind.DECIDE and outcome.decision else None
    )
    if final is not None:
        values = _decided_values(final, outcome.edited_text, f"consensus ({outcome.summary})", None, now)
    elif outcome.kind is cons.OutcomeKind.ESCALATE:
        values = back_to_queue | {"escalated": True}
    else:
        values = back_to_queue
    changed = _transition(session, item.id, item.version, _holder_conditions(reviewer, now), values)
    if changed is None:
        _refuse_if_not_holder(_load(session, item.id), reviewer, now)
        raise StaleVersion(f"review item {item.id} changed while deciding; reload it")
    session.add(
        ReviewerVerdict(
            item_id=item.id,
            reviewer_id=reviewer.id,
            decision=decision.value,
            edited_text=edited_text if decision is Decision.EDIT else None,
            reason=reason,
            created_at=now,
        )
    )
    session.flush()
    _audit(
        session,
        events.REVIEW_VERDICT,
        _actor(reviewer),
        changed,
        decision=decision.value,
        verdicts=len(votes),
        required=wanted.verdicts,
        rule=wanted.rule.value,
    )
    if final is not None:
        _finish(
            session, changed, final, outcome.edited_text, changed.decision_reason, cons.CONSENSUS_ACTOR, now
        )
    elif outcome.kind is cons.OutcomeKind.ESCALATE:
        _audit(session, events.REVIEW_ESCALATED, cons.CONSENSUS_ACTOR, changed, reason=outcome.summary)
    return changed


def escalate(
    *,
    session: Session,
    item_id: str,
    reviewer: Reviewer,
    reason: str | None = None,
    now: datetime | None = None,
) -> ReviewItem:
    """Hand a claimed item to the admins: it goes back to pending, visible to admins only."""
    _check_text("reason", reason, MAX_REASON_CHARS)
    _check_active(reviewer)
    now = now or utcnow()
    item = _load(session, item_id)
    _refuse_if_not_holder(item, reviewer, now)
    escalated = _transition(
        session,
        item_id,
        item.version,
        _holder_conditions(reviewer, now),
        {
            "state": ReviewState.PENDING,
            "escalated": True,
            "claimed_by": None,
            "claimed_at": None,
            "lease_expires_at": None,
            "updated_at": now,
        },
    )
    if escalated is None:
        raise StaleVersion(f"review item {item_id} changed while escalating; reload it")
    _audit(session, events.REVIEW_ESCALATED, _actor(reviewer), escalated, reason=reason)
    return escalated


DEADLINE_ACTOR = "system:deadline"


def apply_deadlines(
    *, session: Session, deadlines: Mapping[str, Deadline], now: datetime | None = None
) -> list[tuple[str, DeadlineAction]]:
    """Applies each policy's review deadline to its pending items that waited longer; returns (policy,
    action) per item this call handled. A claimed item is left to its reviewer (once the claim lapses
    it is pending again, and overdue); an escalated item is not escalated again. Items are claimed
    row by row (`SKIP LOCKED` on PostgreSQL, the version check everywhere), so replicas sweeping at once
    handle each item once."""
    now = now or utcnow()
    handled: list[tuple[str, DeadlineAction]] = []
    for policy, deadline in deadlines.items():
        query = (
            select(ReviewItem.id, ReviewItem.version)
            .join(GenerationOutput, ReviewItem.output_id == GenerationOutput.id)
            .where(
                GenerationOutput.policy_name == policy,
                ReviewItem.state == ReviewState.PENDING,
                ReviewItem.created_at <= now - deadline.after,
            )
            .order_by(ReviewItem.created_at)
        )
        if deadline.action is DeadlineAction.ESCALATE:
            query = query.where(ReviewItem.escalated.is_(False))
        if deadline.action is DeadlineAction.APPROVE:
            query = query.where(cons.only_approvals_given())
        if is_postgresql(session):
            query = query.with_for_update(of=ReviewItem, skip_locked=True)
        for item_id, version in session.execute(query).all():
            if _apply_deadline(session, item_id, version, deadline, now):
                handled.append((policy, deadline.action))
    return handled


def _apply_deadline(session: Session, item_id: str, version: int, deadline: Deadline, now: datetime) -> bool:
    pending = [ReviewItem.state == ReviewState.PENDING]
    reason = f"no decision within {deadline.after.total_seconds():g} s: {deadline.action.value}"
    if deadline.action is DeadlineAction.ESCALATE:
        item = _transition(session, item_id, version, pending, {"escalated": True, "updated_at": now})
        if item is None:
            return False
    else:
        decision = Decision.APPROVE if deadline.action is DeadlineAction.APPROVE else Decision.REJECT
        state = _DECISION_EFFECT[decision][0]
        values = {"state": state, "decided_at": now, "decision_reason": reason, "updated_at": now}
        item = _transition(session, item_id, version, pending, values)
        if item is None:
            return False
        _settle_output(session, item.output, decision, None, now)
    _audit(
        session,
        events.REVIEW_DEADLINE_PASSED,
        DEADLINE_ACTOR,
        item,
        action=deadline.action.value,
        reason=reason,
    )
    if deadline.action is DeadlineAction.APPROVE and not is_prompt_output(item.output):
        _audit(session, events.RESULT_RELEASED, DEADLINE_ACTOR, item)
    _webhook(session, item, webhook_events.REVIEW_DEADLINE_PASSED)
    return True


def get_item(*, session: Session, item_id: str) -> ReviewItem:
    """One item (for the review page), or NotFound."""
    item = session.get(ReviewItem, item_id)
    if item is None:
        raise NotFound(f"review item {item_id} not found")
    return item


def list_items(
    *,
    session: Session,
    states: set[ReviewState] | None = None,
    include_escalated: bool = False,
    limit: int = 100,
) -> list[ReviewItem]:
    """Items in queue order (the queue page); escalated ones only when asked (admins)."""
    stmt = select(ReviewItem).order_by(ReviewItem.priority.desc(), ReviewItem.created_at, ReviewItem.id)
    if states:
        stmt = stmt.where(ReviewItem.state.in_(states))
    if not include_escalated:
        stmt = stmt.where(ReviewItem.escalated.is_(False))
    return list(session.scalars(stmt.limit(limit)))
