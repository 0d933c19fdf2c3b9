"""The outbox: webhook events written in the same transaction as the change they report.

`enqueue` is called beside the audit append of each change (gateway/pipeline/recording.py,
gateway/review/queue.py), so an event exists if and only if its change committed: a crash between commit
and delivery loses nothing, the delivery worker (gateway/webhooks/delivery.py) finds the row after a
restart. It writes one row per subscribed endpoint of the tenant; a tenant with none costs one indexed
SELECT.

The body is fixed here, once: event id, type, tenant, ticket, request id, state and time. Never text of
any kind (generated, masked, edited, a reason): a client fetches an approved text with its key through
GetResult.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from gateway.audit import append as audit_append
from gateway.audit import events as audit_events
from gateway.errors import InvalidArgument, NotFound
from gateway.storage.base import new_id, utcnow
from gateway.storage.models import DeliveryState, WebhookDelivery, WebhookEndpoint
from gateway.webhooks.events import EVENT_TYPES


def event_body(
    *, event_id: str, event_type: str, tenant: str, ticket: str, request_id: str, state: str, at: datetime
) -> str:
    """The exact JSON a receiver gets (compact, keys sorted): what the signature covers."""
    document: dict[str, Any] = {
        "id": event_id,
        "type": event_type,
        "created_at": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "tenant": tenant,
        "ticket": ticket,
        "request_id": request_id,
        "state": state,
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":"))


def enqueue(
    *, session: Session, event_type: str, tenant: str, ticket: str, request_id: str, state: str
) -> int:
    """Adds the event for each of `tenant`'s endpoints subscribed to `event_type`; returns how many rows."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown webhook event type {event_type!r}")  # a programming error
    endpoints = session.execute(
        select(WebhookEndpoint.id, WebhookEndpoint.events).where(WebhookEndpoint.tenant == tenant)
    ).all()
    subscribed = [row.id for row in endpoints if event_type in (row.events or ())]
    if not subscribed:
        return 0
    now = utcnow()
    event_id = new_id()
    body = event_body(
        event_id=event_id,
        event_type=event_type,
        tenant=tenant,
        ticket=ticket,
        request_id=request_id,
        state=state,
        at=now,
    )
    for endpoint_id in subscribed:
        session.add(
            WebhookDelivery(
                event_id=event_id,
                endpoint_id=endpoint_id,
                tenant=tenant,
                event_type=event_type,
                ticket=ticket,
                body=body,
                state=DeliveryState.PENDING,
                attempts=0,
                next_attempt_at=now,
                retry_since=now,
                created_at=now,
            )
        )
    session.flush()
    return len(subscribed)


def list_deliveries(
    *,
    session: Session,
    state: DeliveryState | None = None,
    tenant: str | None = None,
    limit: int = 100,
) -> list[WebhookDelivery]:
    """Outbox rows, oldest first."""
    stmt = select(WebhookDelivery).order_by(WebhookDelivery.id).limit(limit)
    if state is not None:
        stmt = stmt.where(WebhookDelivery.state == state)
    if tenant is not None:
        stmt = stmt.where(WebhookDelivery.tenant == tenant)
    return list(session.scalars(stmt))


def redeliver(*, session: Session, actor: str, delivery_id: int | None = None, all_dead: bool = False) -> int:
    """Puts one dead delivery (by id), or every dead one, back in the outbox with a fresh give-up clock;
    returns how many. A delivery that is not dead cannot be redelivered (it is pending or was delivered)."""
    if (delivery_id is None) == (not all_dead):
        raise InvalidArgument("give a delivery id or all_dead, not both or neither")
    now = utcnow()
    stmt = update(WebhookDelivery).where(WebhookDelivery.state == DeliveryState.DEAD)
    if delivery_id is not None:
        row = session.get(WebhookDelivery, delivery_id)
        if row is None:
            raise NotFound(f"no webhook delivery {delivery_id}")
        if row.state != DeliveryState.DEAD:
            raise InvalidArgument(f"webhook delivery {delivery_id} is {row.state.value}, not dead")
        stmt = stmt.where(WebhookDelivery.id == delivery_id)
    ids = list(
        session.scalars(
            stmt.values(
                state=DeliveryState.PENDING, attempts=0, next_attempt_at=now, retry_since=now
            ).returning(WebhookDelivery.id)
        )
    )
    if ids:
        audit_append(
            session=session,
            event_type=audit_events.WEBHOOK_REDELIVERED,
            actor=actor,
            action="redeliver",
            payload={"deliveries": sorted(ids)},
        )
    return len(ids)


def prune_delivered(*, session: Session, older_than: timedelta, now: datetime | None = None) -> int:
    """Deletes delivered rows delivered more than `older_than` ago (the outbox is not an archive: the
    audit log keeps the changes themselves); returns how many. Dead and pending rows are kept."""
    cutoff = (now or utcnow()) - older_than
    result = session.execute(
        delete(WebhookDelivery).where(
            WebhookDelivery.state == DeliveryState.DELIVERED, WebhookDelivery.delivered_at < cutoff
        )
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
