"""Filtered, keyset-paginated reads of the audit log (``Audit.Query``, ``modgate audit query``).

Keyset pagination (``after_id``) rather than OFFSET: pages stay stable while events are appended and
each page costs the same however deep it is. Pass the last id of one page as ``after_id`` of the next.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.storage.models import AuditEvent
from gateway.timewindow import check_window

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


def query(
    *,
    session: Session,
    since: datetime | None = None,
    until: datetime | None = None,
    tenant: str | None = None,
    request_id: str | None = None,
    ticket: str | None = None,
    actor: str | None = None,
    event_type: str | None = None,
    action: str | None = None,
    after_id: int | None = None,
    limit: int = DEFAULT_LIMIT,
) -> list[AuditEvent]:
    """Events matching every given filter, oldest first, at most ``limit`` (1..1000).

    ``since`` is inclusive and ``until`` exclusive, both aware datetimes. An ``event_type`` ending in
    ``.`` or ``.*`` matches the whole family (``review.*``: claimed, approved, ...).
    """
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be between 1 and {MAX_LIMIT}")
    check_window(since, until)

    stmt = select(AuditEvent).order_by(AuditEvent.id).limit(limit)
    if after_id is not None:
        stmt = stmt.where(AuditEvent.id > after_id)
    if since is not None:
        stmt = stmt.where(AuditEvent.created_at >= since)
    if until is not None:
        stmt = stmt.where(AuditEvent.created_at < until)
    if event_type is not None:
        if event_type.endswith((".", ".*")):
            prefix = event_type.removesuffix("*")
            stmt = stmt.where(AuditEvent.event_type.startswith(prefix, autoescape=True))
        else:
            stmt = stmt.where(AuditEvent.event_type == event_type)
    for column, wanted in (
        (AuditEvent.tenant, tenant),
        (AuditEvent.request_id, request_id),
        (AuditEvent.ticket, ticket),
        (AuditEvent.actor, actor),
        (AuditEvent.action, action),
    ):
        if wanted is not None:
            stmt = stmt.where(column == wanted)
    return list(session.scalars(stmt))
