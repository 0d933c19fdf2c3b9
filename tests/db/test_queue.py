"""Review queue: claim with a lease, renew, expire, decide, escalate, results; every domain error."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from gateway import audit
from gateway.review import (
    AlreadyDecided,
    AlreadyExists,
    Forbidden,
    InvalidArgument,
    InvalidDecision,
    LeaseExpired,
    NotClaimant,
    NotFound,
    ResultState,
    StaleVersion,
    claim_next,
    create_review_item,
    decide,
    disable_reviewer,
    escalate,
    get_result,
    release_expired,
    renew_lease,
)
from gateway.storage.models import AuditEvent, OutputStatus, Reviewer, ReviewerRole, ReviewItem, ReviewState

T0 = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)
LEASE = 60

AddHeld = Callable[..., ReviewItem]
AddReviewer = Callable[..., Reviewer]


def _claim(db: sessionmaker[Session], reviewer: Reviewer, now: datetime = T0) -> ReviewItem | None:
    with db() as s, s.begin():
        return claim_next(session=s, reviewer=reviewer, lease_seconds=LEASE, now=now)


def _decide(db: sessionmaker[Session], item: ReviewItem, reviewer: Reviewer, **kwargs: object) -> ReviewItem:
    kwargs.setdefault("expected_version", item.version)
    kwargs.setdefault("now", T0 + timedelta(seconds=10))
    kwargs.setdefault("item_id", item.id)
    with db() as s, s.begin():
        return decide(session=s, reviewer=reviewer, **kwargs)  # type: ignore[arg-type]


def _events(db: sessionmaker[Session], event_type: str | None = None) -> list[AuditEvent]:
    with db() as s:
        return audit.query(session=s, event_type=event_type, limit=1000)


def test_hold_issues_ticket_and_withdraws_text(
    db: sessionmaker[Session], add_held: AddHeld, output_of
) -> None:
    item = add_held(text="do not show me")
    output = output_of(item)
    assert item.state == ReviewState.PENDING and item.version == 1
    assert output.status == OutputStatus.HELD and output.released_text is None
    assert output.ticket and output.ticket.startswith("tkt_")
    assert item.priority == pytest.approx(0.7)  # defaults to the highest score
    [held] = _events(db, "review.held")
    assert held.ticket == output.ticket and held.payload["item_id"] == item.id
    with db() as s, s.begin(), pytest.raises(AlreadyExists):
        create_review_item(session=s, output=s.merge(output))


def test_claim_order_priority_then_age(
    db: sessionmaker[Session], add_held: AddHeld, add_reviewer: AddReviewer
) -> None:
    old_low = add_held(priority=0.5, created_at=T0 - timedelta(hours=2))
    new_high = add_held(priority=0.9, created_at=T0 - timedelta(minutes=1))
    old_high = add_held(priority=0.9, created_at=T0 - timedelta(hours=1))
    reviewer = add_reviewer()
    claimed = [_claim(db, reviewer) for _ in range(4)]
    assert [c.id if c else None for c in claimed] == [old_high.id, new_high.id, old_low.id, None]


def test_claim_sets_lease_and_bumps_version(
    db: sessionmaker[Session], add_held: AddHeld, add_reviewer: AddReviewer
) -> None:
    add_held()
    reviewer = add_reviewer()
    item = _claim(db, reviewer)
    assert item is not None
    assert item.state == ReviewState.CLAIMED and item.claimed_by == reviewer.id
    assert item.lease_expires_at == T0 + timedelta(seconds=LEASE)
    assert item.version == 2
    [event] = _events(db, "review.claimed")
    assert event.actor == f"reviewer:{reviewer.username}"


def test_live_claim_is_not_claimable_but_expired_one_is(
    db: sessionmaker[Session], add_held: AddHeld, add_reviewer: AddReviewer
) -> None:
    add_held()
    first, second = add_reviewer(), add_reviewer()
    item = _claim(db, first)
    assert item is not None
    assert _claim(db, second, now=T0 + timedelta(seconds=LEASE - 1)) is None
    retaken = _claim(db, second, now=T0 + timedelta(seconds=LEASE))
    assert retaken is not None and retaken.id == item.id and retaken.claimed_by == second.id
    # The first reviewer lost it: deciding now names the reason.
    with pytest.raises(NotClaimant):
        _decide(db, item, first, expected_version=retaken.version, decision="approve")


def test_escalated_items_only_for_admins(
    db: sessionmaker[Session], add_held: AddHeld, add_reviewer: AddReviewer
) -> None:
    escalated = add_held(escalated=True, priority=1.0)
    normal = add_held(priority=0.1)
    reviewer, admin = add_reviewer(), add_reviewer(ReviewerRole.ADMIN)
    got = _claim(db, reviewer)
    assert got is not None and got.id == normal.id
    assert _claim(db, reviewer) is None
    got = _claim(db, admin)
    assert got is not None and got.id == escalated.id


def test_reviewer_escalates_to_admin(
    db: sessionmaker[Session], add_held: AddHeld, add_reviewer: AddReviewer
) -> None:
    add_held()
    reviewer, admin = add_reviewer(), add_reviewer(ReviewerRole.ADMIN)
    item = _claim(db, reviewer)
    assert item is not None
    with db() as s, s.begin():
        escalated = escalate(session=s, item_id=item.id, reviewer=reviewer, reason="threat?", now=T0)
    assert escalated.escalated and escalated.state == ReviewState.PENDING and escalated.claimed_by is None
    assert _claim(db, reviewer) is None
    again = _claim(db, admin)
    assert again is not None and again.id == item.id
    decided = _decide(db, again, admin, decision="reject", reason="threat")
    assert decided.state == ReviewState.REJECTED


def test_renew_lease(db: sessionmaker[Session], add_held: AddHeld, add_reviewer: AddReviewer) -> None:
    add_held()
    owner, other = add_reviewer(), add_reviewer()
    item = _claim(db, owner)
    assert item is not None
    later = T0 + timedelta(seconds=50)
    with db() as s, s.begin():
        renewed = renew_lease(session=s, item_id=item.id, reviewer=owner, lease_seconds=LEASE, now=later)
    assert renewed.lease_expires_at == later + timedelta(seconds=LEASE)
    assert renewed.version == item.version  # the reviewer's page stays valid
    # Still held past the original expiry thanks to the heartbeat:
    assert _claim(db, other, now=T0 + timedelta(seconds=LEASE + 5)) is None
    with db() as s, s.begin(), pytest.raises(NotClaimant):
        renew_lease(session=s, item_id=item.id, reviewer=other, now=later)
    with db() as s, s.begin(), pytest.raises(LeaseExpired):
        renew_lease(session=s, item_id=item.id, reviewer=owner, now=later + timedelta(seconds=LEASE))
    with db() as s, s.begin(), pytest.raises(NotFound):
        renew_lease(session=s, item_id="no-such-item", reviewer=owner, now=later)
    with db() as s, s.begin(), pytest.raises(InvalidArgument):
        renew_lease(session=s, item_id=item.id, reviewer=owner, lease_seconds=0, now=later)
    _decide(db, item, owner, decision="approve")
    with db() as s, s.begin(), pytest.raises(AlreadyDecided):
        renew_lease(session=s, item_id=item.id, reviewer=owner, now=later)


def test_release_expired(db: sessionmaker[Session], add_held: AddHeld, add_reviewer: AddReviewer) -> None:
    add_held(priority=0.9)
    add_held(priority=0.1)
    early, late = add_reviewer(), add_reviewer()
    a = _claim(db, early, now=T0)
    b = _claim(db, late, now=T0 + timedelta(seconds=30))
    assert a is not None and b is not None
    with db() as s, s.begin():
        assert release_expired(session=s, now=T0 + timedelta(seconds=LEASE)) == 1
    with db() as s:
        ra, rb = s.get(ReviewItem, a.id), s.get(ReviewItem, b.id)
        assert ra is not None and rb is not None
        assert ra.state == ReviewState.PENDING and ra.claimed_by is None and ra.version == a.version + 1
        assert rb.state == ReviewState.CLAIMED and rb.claimed_by == late.id
    [event] = _events(db, "review.lease_expired")
    assert event.payload["reviewer_id"] == early.id
    with db() as s, s.begin():
        assert release_expired(session=s, now=T0 + timedelta(seconds=LEASE)) == 0


def test_approve_releases_original(
    db: sessionmaker[Session], add_held: AddHeld, add_reviewer: AddReviewer, output_of
) -> None:
    add_held(text="original words")
    reviewer = add_reviewer()
    item = _claim(db, reviewer)
    assert item is not None
    decided = _decide(db, item, reviewer, decision="approve", reason="fine in context")
    assert decided.state == ReviewState.APPROVED and decided.version == item.version + 1
    assert decided.decided_by == reviewer.id and decided.decision_reason == "fine in context"
    output = output_of(item)
    assert output.status == OutputStatus.APPROVED and output.released_text == "original words"
    assert [e.event_type for e in _events(db)][-2:] == ["review.approved", "result.released"]


def test_edit_keeps_original(
    db: sessionmaker[Session], add_held: AddHeld, add_reviewer: AddReviewer, output_of
) -> None:
    add_held(text="original rude words")
    reviewer = add_reviewer()
    item = _claim(db, reviewer)
    assert item is not None
    decided = _decide(db, item, reviewer, decision="edit", edited_text="original polite words")
    assert decided.state == ReviewState.EDITED and decided.edited_text == "original polite words"
    output = output_of(item)
    assert output.status == OutputStatus.EDITED
    assert output.generated_text == "original rude words"
    assert output.released_text == "original polite words"
    [event] = _events(db, "review.edited")
    assert "edited_sha256" in event.payload
    # Withheld text leaves no trace in the audit log, not even a hash a guesser could check a guess with.
    withheld = hashlib.sha256(b"original rude words").hexdigest()
    recorded = json.dumps(event.payload)
    assert "original rude words" not in recorded and withheld not in recorded


def test_reject_releases_nothing(
    db: sessionmaker[Session], add_held: AddHeld, add_reviewer: AddReviewer, output_of
) -> None:
    add_held()
    reviewer = add_reviewer()
    item = _claim(db, reviewer)
    assert item is not None
    _decide(db, item, reviewer, decision="reject", reason="harassment")
    output = output_of(item)
    assert output.status == OutputStatus.REJECTED and output.released_text is None
    assert _events(db, "result.released") == []


def test_decide_refusals(db: sessionmaker[Session], add_held: AddHeld, add_reviewer: AddReviewer) -> None:
    add_held()
    owner, other = add_reviewer(), add_reviewer()
    item = _claim(db, owner)
    assert item is not None
    with pytest.raises(NotFound):
        _decide(db, item, owner, item_id="no-such-item", decision="approve")
    with pytest.raises(NotClaimant):
        _decide(db, item, other, decision="approve")
    with pytest.raises(StaleVersion):
        _decide(db, item, owner, expected_version=item.version - 1, decision="approve")
    with pytest.raises(LeaseExpired):
        _decide(db, item, owner, decision="approve", now=T0 + timedelta(seconds=LEASE))
    for bad in (
        {"decision": "publish"},
        {"decision": "edit"},
        {"decision": "edit", "edited_text": "   "},
        {"decision": "approve", "edited_text": "sneaky"},
    ):
        with pytest.raises(InvalidDecision):
            _decide(db, item, owner, **bad)
    _decide(db, item, owner, decision="approve")
    with pytest.raises(AlreadyDecided):
        _decide(db, item, owner, expected_version=item.version + 1, decision="reject")


def test_unclaimed_item_cannot_be_decided(
    db: sessionmaker[Session], add_held: AddHeld, add_reviewer: AddReviewer
) -> None:
    item = add_held()
    with pytest.raises(NotClaimant):
        _decide(db, item, add_reviewer(), decision="approve")


def test_disabled_reviewer_is_forbidden_and_loses_claims(
    db: sessionmaker[Session], add_held: AddHeld, add_reviewer: AddReviewer
) -> None:
    add_held()
    reviewer, other = add_reviewer(), add_reviewer()
    item = _claim(db, reviewer)
    assert item is not None
    with db() as s, s.begin():
        disabled = disable_reviewer(session=s, username=reviewer.username, now=T0)
    with pytest.raises(Forbidden):
        _claim(db, disabled)
    with pytest.raises(Forbidden):
        _decide(db, item, disabled, decision="approve")
    retaken = _claim(db, other)  # handed back at once, no lease wait
    assert retaken is not None and retaken.id == item.id
    [event] = _events(db, "reviewer.disabled")
    assert event.payload["released_items"] == 1


def test_non_admin_cannot_decide_escalated_item(
    db: sessionmaker[Session], add_held: AddHeld, add_reviewer: AddReviewer
) -> None:
    add_held(escalated=True)
    admin = add_reviewer(ReviewerRole.ADMIN)
    item = _claim(db, admin)
    assert item is not None
    with db() as s, s.begin():  # demoted while holding the claim
        row = s.get(Reviewer, admin.id)
        assert row is not None
        row.role = ReviewerRole.REVIEWER
        demoted = row
    with pytest.raises(Forbidden):
        _decide(db, item, demoted, decision="approve")


def test_get_result(
    db: sessionmaker[Session], add_held: AddHeld, add_reviewer: AddReviewer, output_of
) -> None:
    add_held(text="the secret words", tenant="acme")
    ticket = None
    reviewer = add_reviewer()
    item = _claim(db, reviewer)
    assert item is not None
    ticket = output_of(item).ticket
    assert ticket is not None
    with db() as s:
        pending = get_result(session=s, ticket=ticket, tenant="acme")
        assert pending.state == ResultState.PENDING and pending.text is None
        with pytest.raises(NotFound):
            get_result(session=s, ticket=ticket, tenant="other-tenant")
        with pytest.raises(NotFound):
            get_result(session=s, ticket="tkt_unknown")
    _decide(db, item, reviewer, decision="edit", edited_text="the kind words")
    with db() as s:
        done = get_result(session=s, ticket=ticket)
        assert done.state == ResultState.EDITED and done.text == "the kind words"
        assert done.decided_at == T0 + timedelta(seconds=10)


def test_rejected_result_has_no_text(
    db: sessionmaker[Session], add_held: AddHeld, add_reviewer: AddReviewer, output_of
) -> None:
    add_held(text="the secret words")
    reviewer = add_reviewer()
    item = _claim(db, reviewer)
    assert item is not None
    _decide(db, item, reviewer, decision="reject")
    with db() as s:
        result = get_result(session=s, ticket=output_of(item).ticket)
    assert result.state == ResultState.REJECTED and result.text is None


def test_audit_never_carries_generated_text(
    db: sessionmaker[Session], add_held: AddHeld, add_reviewer: AddReviewer
) -> None:
    add_held(text="WITHHELD-ORIGINAL")
    add_held(text="WITHHELD-SECOND")
    reviewer = add_reviewer()
    for decision, edited in (("edit", "EDITED-REPLACEMENT"), ("reject", None)):
        item = _claim(db, reviewer)
        assert item is not None
        _decide(db, item, reviewer, decision=decision, edited_text=edited)
    with db() as s:
        dumped = " ".join(audit.canonical_json(e.payload) for e in s.scalars(select(AuditEvent)))
    assert dumped  # there are events to look at
    for text in ("WITHHELD-ORIGINAL", "WITHHELD-SECOND", "EDITED-REPLACEMENT"):
        assert text not in dumped
    with db() as s:
        assert audit.verify(session=s).ok
