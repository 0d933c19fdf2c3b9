"""Housekeeping that keeps the database honest after crashes and abandoned work.

- A request still `received`/`generating` long after any call could last was interrupted (the process
  died between recording it and answering): it is marked `failed` with an audit event, so that no
  accepted request is left in a state that never resolves. Time-based rather than per-process, because
  several gateway replicas may share the database and a restarted process cannot tell its own old rows.
- Claimed review items whose lease lapsed go back to pending (`review.lease_expired` events).
- Held outputs that waited past their policy's review deadline get the deadline's action (reject,
  approve or escalate; `review.deadline_passed` events by `system:deadline`, a webhook, a metric).

Every replica runs the sweep on its own timer, so passes meet: each piece of work is claimed as a row
(`FOR UPDATE SKIP LOCKED` on PostgreSQL, a conditional UPDATE everywhere), so it is done, audited and
counted by exactly one of them (tests/db/test_maintenance_replicas.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from gateway.audit import append, events
from gateway.ops.metrics import REVIEW_DEADLINES
from gateway.ops.periodic import repeat
from gateway.review.deadlines import Deadline
from gateway.review.queue import apply_deadlines, release_expired
from gateway.storage.base import utcnow
from gateway.storage.engine import is_postgresql
from gateway.storage.models import GenerationRequest, RequestStatus
from gateway.storage.tx import run_in_transaction

log = logging.getLogger(__name__)

INTERRUPTED = "interrupted: the gateway stopped before answering"
_OPEN = (RequestStatus.RECEIVED, RequestStatus.GENERATING)


def fail_stale_requests(*, session: Session, older_than: timedelta, now: datetime | None = None) -> int:
    """Marks open requests not updated for `older_than` as failed; returns how many this call failed
    (rows another replica's sweep holds or already failed are not counted)."""
    cutoff = (now or utcnow()) - older_than
    query = select(GenerationRequest.id, GenerationRequest.request_id, GenerationRequest.tenant).where(
        GenerationRequest.status.in_(_OPEN), GenerationRequest.updated_at < cutoff
    )
    if is_postgresql(session):
        query = query.with_for_update(skip_locked=True)
    failed = 0
    for row in session.execute(query).all():
        done = session.execute(
            update(GenerationRequest)
            .where(GenerationRequest.id == row.id, GenerationRequest.status.in_(_OPEN))
            .values(status=RequestStatus.FAILED, error=INTERRUPTED, updated_at=now or utcnow())
        )
        if done.rowcount:  # type: ignore[attr-defined]
            failed += 1
            append(
                session=session,
                event_type=events.GENERATION_FAILED,
                actor="system",
                tenant=row.tenant,
                request_id=row.request_id,
                payload={"generation_request": row.id, "error": INTERRUPTED},
            )
    return failed


def sweep(
    sessions: sessionmaker[Session],
    *,
    stale_after: timedelta,
    deadlines: Mapping[str, Deadline] | None = None,
) -> tuple[int, int, int]:
    """One pass: (requests failed, review leases released, review deadlines applied). Leases first:
    an item whose claim lapsed is pending again, and then subject to its deadline."""
    failed = run_in_transaction(sessions, lambda s: fail_stale_requests(session=s, older_than=stale_after))
    released = run_in_transaction(sessions, lambda s: release_expired(session=s))
    overdue = (
        run_in_transaction(sessions, lambda s: apply_deadlines(session=s, deadlines=deadlines))
        if deadlines
        else []
    )
    for policy, action in overdue:
        REVIEW_DEADLINES.labels(policy, action.value).inc()
    if failed or released or overdue:
        log.info(
            "maintenance: %d interrupted request(s) marked failed, %d lapsed claim(s) released, "
            "%d review deadline(s) applied",
            failed,
            released,
            len(overdue),
        )
    return failed, released, len(overdue)


async def run_periodically(
    sessions: sessionmaker[Session],
    *,
    stale_after: timedelta,
    interval_s: float,
    deadlines: Mapping[str, Deadline] | None = None,
) -> None:
    """Until cancelled; a failing pass is logged and retried at the next interval (the database may be
    down for a while, and the gateway must recover without a restart)."""

    async def one_pass() -> None:
        await asyncio.to_thread(sweep, sessions, stale_after=stale_after, deadlines=deadlines)

    await repeat(one_pass, interval_s=interval_s, what="maintenance pass", logger=log)
