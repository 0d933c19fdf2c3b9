"""The append-only, hash-chained audit log: append one event, verify the whole chain.

Each row stores ``prev_hash`` (the previous row's ``hash``, or :data:`GENESIS_HASH` for row 1) and
``hash = sha256(prev_hash + canonical JSON of its fields)``, the fields including the row's ``id`` and
``created_at``. Editing a row breaks its own hash; deleting, inserting or reordering rows breaks the
link of the next one, and ids are contiguous (assigned as last id + 1 under the append lock), so a
deleted row also shows as a gap. What a chain cannot show on its own is the loss of its newest rows or a
rewrite of everything from some row on: record ``VerifyResult.head_id``/``head_hash`` somewhere else
and pass them back as ``anchor`` to catch that.

Concurrency: two appenders must never read the same last hash (that would fork the chain). On
PostgreSQL, :func:`append` takes a transaction-level advisory lock before reading the last row, held
until the caller commits; on SQLite, sessions from :func:`gateway.storage.make_engine` begin with
``BEGIN IMMEDIATE``, so the transaction already holds the database's single write lock. In both cases
the primary key on ``id`` turns any remaining race (another engine, another isolation level) into an
IntegrityError, never a fork.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.storage.base import utcnow
from gateway.storage.engine import is_postgresql
from gateway.storage.models import AuditEvent

GENESIS_HASH = "0" * 64
# pg_advisory_xact_lock key: the bytes of "modgate" as a (positive) 64-bit integer.
AUDIT_LOCK_KEY = int.from_bytes(b"modgate", "big")
_EVENT_TYPE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")


def canonical_json(value: Any) -> str:
    """One byte-exact JSON form per value: sorted keys, no spaces, UTF-8, no NaN/Infinity."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _timestamp(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def event_fields(event: Any) -> dict[str, Any]:
    """The fields a row's hash covers (everything but ``hash`` itself; ``prev_hash`` is prepended).

    ``event`` is an :class:`AuditEvent` or a result row with the same attribute names.
    """
    return {
        "id": event.id,
        "created_at": _timestamp(event.created_at),
        "event_type": event.event_type,
        "actor": event.actor,
        "tenant": event.tenant,
        "request_id": event.request_id,
        "ticket": event.ticket,
        "action": event.action,
        "payload": event.payload,
    }


def compute_hash(prev_hash: str, fields: dict[str, Any]) -> str:
    """``sha256(prev_hash + canonical_json(fields))`` as lowercase hex."""
    return hashlib.sha256((prev_hash + canonical_json(fields)).encode("utf-8")).hexdigest()


def _lock_chain(session: Session) -> None:
    if is_postgresql(session):
        session.execute(select(func.pg_advisory_xact_lock(AUDIT_LOCK_KEY)))


def append(
    *,
    session: Session,
    event_type: str,
    actor: str,
    tenant: str | None = None,
    request_id: str | None = None,
    ticket: str | None = None,
    action: str | None = None,
    payload: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> AuditEvent:
    """Append one event in the caller's transaction and return it (flushed, not committed).

    ``payload`` must be a JSON object; it is normalised through canonical JSON before storing, so the
    stored value and the hashed value are the same document. Never put withheld generated text in it:
    audit rows are readable through ``Audit.Query``.
    """
    if not _EVENT_TYPE.fullmatch(event_type) or len(event_type) > 64:
        raise ValueError(f"invalid audit event type {event_type!r}")
    if not actor:
        raise ValueError("an audit event needs an actor")
    if payload is not None and not isinstance(payload, dict):
        raise TypeError("audit payload must be a JSON object (dict)")
    normalised: dict[str, Any] = json.loads(canonical_json(payload or {}))

    _lock_chain(session)
    last = session.execute(
        select(AuditEvent.id, AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1)
    ).first()
    last_id, prev_hash = (last.id, last.hash) if last is not None else (0, GENESIS_HASH)

    event = AuditEvent(
        id=last_id + 1,
        created_at=(now or utcnow()).astimezone(UTC),
        event_type=event_type,
        actor=actor,
        tenant=tenant,
        request_id=request_id,
        ticket=ticket,
        action=action,
        payload=normalised,
        prev_hash=prev_hash,
    )
    event.hash = compute_hash(prev_hash, event_fields(event))
    session.add(event)
    session.flush()
    return event


_COLUMNS = tuple(AuditEvent.__table__.columns)


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """The outcome of :func:`verify`: ``first_bad_id`` names the first row that fails, with why."""

    ok: bool
    checked: int
    first_bad_id: int | None = None
    problem: str | None = None
    head_id: int | None = None
    head_hash: str | None = None


def verify(
    *, session: Session, anchor: tuple[int, str] | None = None, batch_size: int = 1000
) -> VerifyResult:
    """Walk the whole chain in id order and stop at the first row that is not what was appended.

    ``anchor=(id, hash)``: a head recorded earlier, outside the database; the row with that id must
    still have that hash (this catches truncation and a rewrite of the chain's tail).
    """
    checked = 0
    expected_id = 1
    prev_hash = GENESIS_HASH
    anchor_seen = anchor is None
    last_id = 0
    while True:
        # Plain rows, not ORM objects: nothing accumulates in (or is evicted from) the caller's session.
        rows = session.execute(
            select(*_COLUMNS).where(AuditEvent.id > last_id).order_by(AuditEvent.id).limit(batch_size)
        ).all()
        if not rows:
            break
        for row in rows:
            if row.id != expected_id:
                missing = f"{expected_id}" if row.id == expected_id + 1 else f"{expected_id}..{row.id - 1}"
                return VerifyResult(
                    False, checked, expected_id, f"row {missing} missing (next row is {row.id}): deleted?"
                )
            if compute_hash(row.prev_hash, event_fields(row)) != row.hash:
                return VerifyResult(False, checked, row.id, f"row {row.id} does not match its hash: edited")
            if row.prev_hash != prev_hash:
                return VerifyResult(
                    False,
                    checked,
                    row.id,
                    f"row {row.id} does not link to row {row.id - 1}: rows reordered, replaced or deleted",
                )
            if anchor is not None and row.id == anchor[0]:
                if row.hash != anchor[1]:
                    return VerifyResult(
                        False, checked, row.id, f"row {row.id} does not match the anchor hash"
                    )
                anchor_seen = True
            checked += 1
            prev_hash = row.hash
            expected_id = row.id + 1
            last_id = row.id
    head_id = last_id or None
    head_hash = prev_hash if head_id else None
    if anchor is not None and not anchor_seen:
        return VerifyResult(
            False,
            checked,
            anchor[0],
            f"anchored row {anchor[0]} is missing: log truncated",
            head_id,
            head_hash,
        )
    return VerifyResult(True, checked, None, None, head_id, head_hash)
