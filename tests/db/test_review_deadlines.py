"""Review deadlines: a held output that waited longer than its policy allows gets the deadline's action,
once, by `system:deadline`, audited and sent as a webhook; nothing else is touched."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from gateway.review import claim_next, release_expired
from gateway.review.deadlines import Deadline, DeadlineAction, DeadlineConfigError, parse_deadlines
from gateway.review.queue import DEADLINE_ACTOR, apply_deadlines
from gateway.storage.base import utcnow
from gateway.storage.models import AuditEvent, OutputStatus, ReviewItem, ReviewState, WebhookDelivery
from gateway.webhooks.endpoints import create_endpoint

AddHeld = Callable[..., ReviewItem]
HOUR = timedelta(hours=1)


def deadline(action: DeadlineAction) -> dict[str, Deadline]:
    return {"default": Deadline(after=HOUR, action=action)}


def apply(db: sessionmaker[Session], deadlines: dict[str, Deadline]) -> list[tuple[str, DeadlineAction]]:
    with db() as s, s.begin():
        return apply_deadlines(session=s, deadlines=deadlines)


def state_of(db: sessionmaker[Session], item: ReviewItem) -> tuple[ReviewItem, list[AuditEvent]]:
    with db() as s:
        row = s.get_one(ReviewItem, item.id)
        s.refresh(row, ["output"])
        events = list(
            s.scalars(
                select(AuditEvent).where(AuditEvent.ticket == row.output.ticket).order_by(AuditEvent.id)
            )
        )
        s.expunge_all()
        return row, events


def test_reject_after_the_deadline_releases_nothing(db: sessionmaker[Session], add_held: AddHeld) -> None:
    overdue = add_held(created_at=utcnow() - 2 * HOUR, text="withheld words")
    fresh = add_held(created_at=utcnow() - timedelta(minutes=10))
    assert apply(db, deadline(DeadlineAction.REJECT)) == [("default", DeadlineAction.REJECT)]
    row, events = state_of(db, overdue)
    assert row.state == ReviewState.REJECTED and row.output.status == OutputStatus.REJECTED
    assert row.output.released_text is None and row.decided_by is None and row.decided_at is not None
    [passed] = [e for e in events if e.event_type == "review.deadline_passed"]
    assert passed.actor == DEADLINE_ACTOR and passed.payload["action"] == "reject"
    assert "withheld words" not in json.dumps([e.payload for e in events])
    assert state_of(db, fresh)[0].state == ReviewState.PENDING
    assert apply(db, deadline(DeadlineAction.REJECT)) == [], "applied once"


def test_approve_releases_the_generated_text(db: sessionmaker[Session], add_held: AddHeld) -> None:
    item = add_held(created_at=utcnow() - 2 * HOUR, text="a harmless text")
    assert apply(db, deadline(DeadlineAction.APPROVE)) == [("default", DeadlineAction.APPROVE)]
    row, events = state_of(db, item)
    assert row.state == ReviewState.APPROVED and row.output.released_text == "a harmless text"
    assert {"review.deadline_passed", "result.released"} <= {e.event_type for e in events}


def test_escalate_hands_the_item_to_admins_once(db: sessionmaker[Session], add_held: AddHeld) -> None:
    item = add_held(created_at=utcnow() - 2 * HOUR)
    assert apply(db, deadline(DeadlineAction.ESCALATE)) == [("default", DeadlineAction.ESCALATE)]
    row, _ = state_of(db, item)
    assert row.state == ReviewState.PENDING and row.escalated
    assert apply(db, deadline(DeadlineAction.ESCALATE)) == [], "an escalated item is not escalated again"


def test_a_claimed_item_is_left_to_its_reviewer_until_the_claim_lapses(
    db: sessionmaker[Session], add_held: AddHeld, add_reviewer: Callable[..., object]
) -> None:
    item = add_held(created_at=utcnow() - 2 * HOUR)
    reviewer = add_reviewer()
    with db() as s, s.begin():
        assert claim_next(session=s, reviewer=reviewer, lease_seconds=60) is not None
    assert apply(db, deadline(DeadlineAction.REJECT)) == []
    with db() as s, s.begin():
        release_expired(session=s, now=utcnow() + timedelta(minutes=5))
    assert apply(db, deadline(DeadlineAction.REJECT)) == [("default", DeadlineAction.REJECT)]
    assert state_of(db, item)[0].state == ReviewState.REJECTED


def test_other_policies_are_untouched(db: sessionmaker[Session], add_held: AddHeld) -> None:
    item = add_held(created_at=utcnow() - 2 * HOUR)
    assert apply(db, {"strict": Deadline(after=HOUR, action=DeadlineAction.REJECT)}) == []
    assert state_of(db, item)[0].state == ReviewState.PENDING


def test_the_tenant_gets_a_webhook(db: sessionmaker[Session], add_held: AddHeld) -> None:
    with db() as s, s.begin():
        create_endpoint(
            session=s,
            tenant="acme",
            url="https://hooks.example/modgate",
            events=["review.deadline_passed"],
            actor="test",
        )
    add_held(created_at=utcnow() - 2 * HOUR)
    apply(db, deadline(DeadlineAction.REJECT))
    with db() as s:
        [delivery] = s.scalars(select(WebhookDelivery)).all()
        assert (
            delivery.event_type == "review.deadline_passed"
            and json.loads(delivery.body)["state"] == "rejected"
        )


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"default": {"after_s": -1}}, "after_s: a positive number"),
        ({"default": {"after_s": True}}, "after_s: a positive number"),
        ({"default": {"after_s": 60, "action": "maybe"}}, "action: one of reject, approve, escalate"),
        ({"default": {"after": 60}}, "a table with after_s"),
        ([], "a table of policies"),
    ],
)
def test_malformed_deadlines_name_the_key(table: object, message: str) -> None:
    with pytest.raises(DeadlineConfigError, match=message):
        parse_deadlines(table)


def test_reject_is_the_default_action() -> None:
    assert parse_deadlines({"default": {"after_s": 90}}) == {
        "default": Deadline(after=timedelta(seconds=90), action=DeadlineAction.REJECT)
    }
