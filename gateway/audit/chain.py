"""The append-only, hash-chained audit log: append one event, verify the whole chain.

Each row stores ``prev_hash`` (the previous row's ``hash``, or :data:`GENESIS_HASH` for row 1) and
``hash = sha256(prev_hash + canonical JSON of its fields)``, the fields including the row's ``id`` and
``created_at``. Editing a row breaks its own hash; deleting, inserting or reordering rows breaks the
link of the next one, and ids are contiguous (assigned as last id + 1 under the append lock), so a
deleted row also shows as a gap. What a chain cannot show on its own is the loss of its newest rows or a
rewrite of everything from some row on: record ``VerifyResult.head_id``/``head_hash`` somewhere else
(an authenticated :mod:`gateway.audit.anchor`) and pass them back as ``anchor`` to catch that. Ids
start at 1 and every row is read, whatever its id: a row slipped in at id 0 or below is refused, not
skipped.

Concurrency: two appenders must never read the same last hash (that would fork the chain). On
PostgreSQL, :func:`append` takes a transaction-level advisory lock before reading the last row, held
until the caller commits; on SQLite, sessions from :func:`gateway.storage.make_engine` begin with
``BEGIN IMMEDIATE``, so the transaction already holds the database's single write lock. In both cases
the primary key on ``id`` turns any remaining race (another engine, another isolation level) into an
IntegrityError, never a fork.
"""

from __future__ import annotations

import dataclasses
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


def _walk(
    session: Session,
    *,
    after_id: int | None,
    expected_id: int,
    prev_hash: str,
    anchor: tuple[int, str] | None,
    batch_size: int,
) -> VerifyResult:
    """Checks the rows after ``after_id`` (all rows when None) in id order, expecting the first to be
    ``expected_id`` and to link to ``prev_hash``."""
    checked = 0
    anchor_seen = anchor is None or anchor[0] < expected_id
    last_id = after_id
    while True:
        # Plain rows, not ORM objects: nothing accumulates in (or is evicted from) the caller's session.
        # The first page has no lower bound, so that rows with ids <= 0 are read (and refused) too.
        stmt = select(*_COLUMNS).order_by(AuditEvent.id).limit(batch_size)
        if last_id is not None:
            stmt = stmt.where(AuditEvent.id > last_id)
        rows = session.execute(stmt).all()
        if not rows:
            break
        for row in rows:
            if row.id < expected_id:
                problem = f"row {row.id} is not part of the chain (ids start at 1): inserted"
                return VerifyResult(False, checked, row.id, problem)
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
                        False,
                        checked,
                        row.id,
                        f"row {row.id} does not match the anchor's hash: the chain was rewritten at or "
                        f"before row {row.id}",
                    )
                anchor_seen = True
            checked += 1
            prev_hash = row.hash
            expected_id = row.id + 1
            last_id = row.id
    head_id = expected_id - 1 or None
    head_hash = prev_hash if head_id else None
    if anchor is not None and not anchor_seen:
        return VerifyResult(
            False,
            checked,
            anchor[0],
            f"anchored row {anchor[0]} is missing (head is {head_id or 'empty'}): log truncated",
            head_id,
            head_hash,
        )
    return VerifyResult(True, checked, None, None, head_id, head_hash)


def verify(
    *, session: Session, anchor: tuple[int, str] | None = None, batch_size: int = 1000
) -> VerifyResult:
    """Walk the whole chain in id order and stop at the first row that is not what was appended.

    ``anchor=(id, hash)``: a head recorded earlier, outside the database; the row with that id must
    still have that hash (this catches truncation and a rewrite of the chain's tail). Check the anchor's
    origin (:func:`gateway.audit.anchor.authenticate`) before trusting it.
    """
    return _walk(
        session, after_id=None, expected_id=1, prev_hash=GENESIS_HASH, anchor=anchor, batch_size=batch_size
    )


def verify_from(*, session: Session, anchor: tuple[int, str], batch_size: int = 1000) -> VerifyResult:
    """Check only what was appended since ``anchor``: its row still has its hash and every later row
    links on from it. The server runs this before each new anchor (cheap, unlike a whole walk), so that
    an anchor never certifies a chain that does not extend the previous one. ``checked`` counts the
    anchored row and the rows after it.
    """
    anchor_id, anchor_hash = anchor
    row = session.execute(select(*_COLUMNS).where(AuditEvent.id == anchor_id)).first()
    if row is None:
        return VerifyResult(False, 0, anchor_id, f"anchored row {anchor_id} is missing: log truncated")
    if compute_hash(row.prev_hash, event_fields(row)) != row.hash:
        return VerifyResult(False, 0, anchor_id, f"row {anchor_id} does not match its hash: edited")
    if row.hash != anchor_hash:
        return VerifyResult(
            False,
            0,
            anchor_id,
            f"row {anchor_id} does not match the anchor's hash: the chain was rewritten at or before "
            f"row {anchor_id}",
        )
    result = _walk(
        session,
        after_id=anchor_id,
        expected_id=anchor_id + 1,
        prev_hash=anchor_hash,
        anchor=None,
        batch_size=batch_size,
    )
    return dataclasses.replace(result, checked=result.checked + 1)
