"""What a tenant's own audit reader sees of the events about withheld outputs.

A held or blocked output tells its client that it was withheld, its ticket, the action and which rules
fired, and nothing measured on the text (docs/operations.md, "What a client learns about withheld
text"). The audit log records more: the seed of the request, the token counts and finish reason of the
output, its scores and thresholds, the identity terms found in it and the shadow policies' verdicts,
and a review item's priority (its highest score). With a seeded stop-sequence rerun those facts spell
out the withheld words one guess at a time, so a key with the `audit` scope, which reads its own
tenant's events, gets these events with the facts taken out and the names of what was taken out listed
in the payload's `redacted`. An operator's `audit:all` key, `modgate audit` and the admins' audit page
read the log as stored.

Withheld means: the output's policy decision was hold or block (a reviewer's later approval releases the
text, not the facts of the run); for `request.received`, that the request did not complete with every
output released or masked (a request still generating is withheld until it is decided).

The event hash covers the payload, and the facts taken out are few (at most 512 token counts, a handful of
finish reasons): the hash of a redacted event would confirm a guess of them, so it is not shown, nor is
the `prev_hash` of the event after it, which is the same value. Hashes of other tenants' events, shown as
`prev_hash`, cover random ids a reader cannot guess, so they confirm nothing.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.audit import events
from gateway.storage.models import (
    AuditEvent,
    GenerationOutput,
    GenerationRequest,
    ModerationAction,
    RequestStatus,
)

__all__ = ["Shown", "for_tenant"]

_WITHHELD = (ModerationAction.HOLD, ModerationAction.BLOCK)

# Event type -> the payload key naming what it is about, and what is taken out when that is withheld.
# A name with a dot is a key of a nested object; "reasons[].score" is a key of each reason.
_OUTPUT_FACTS: dict[str, tuple[str, tuple[str, ...]]] = {
    events.GENERATION_COMPLETED: ("output", ("prompt_tokens", "generated_tokens", "finish_reason")),
    events.MODERATION_DECIDED: (
        "output",
        ("scores", "reasons[].score", "reasons[].threshold", "identity_checks", "shadow"),
    ),
    events.REVIEW_HELD: ("output_id", ("priority",)),
    events.REVIEW_APPEALED: ("output_id", ("priority",)),
}
_REQUEST_FACTS: dict[str, tuple[str, tuple[str, ...]]] = {
    events.REQUEST_RECEIVED: ("generation_request", ("seed", "parameters.seed")),
}
FACT_EVENTS = frozenset(_OUTPUT_FACTS) | frozenset(_REQUEST_FACTS)


@dataclass(frozen=True)
class Shown:
    """What a tenant-scoped reader is shown of one event in place of the stored values."""

    payload: dict[str, Any]
    hash: str
    prev_hash: str


def for_tenant(session: Session, rows: Sequence[AuditEvent], *, tenant: str) -> dict[int, Shown]:
    """Event id -> what to show, for the rows of `rows` that a reader scoped to `tenant` must not see
    whole: events about withheld outputs, and events that directly follow one (their `prev_hash`)."""
    in_page = {row.id: row for row in rows}
    before = _preceding(session, [row.id - 1 for row in rows if row.id - 1 not in in_page], tenant=tenant)
    considered = [*rows, *before]
    withheld = _withheld(session, considered)
    redacted = {row.id for row in considered if row.id in withheld}
    shown: dict[int, Shown] = {}
    for row in rows:
        own_redacted, after_redacted = row.id in redacted, row.id - 1 in redacted
        if not (own_redacted or after_redacted):
            continue
        shown[row.id] = Shown(
            payload=_redact(row) if own_redacted else dict(row.payload or {}),
            hash="" if own_redacted else row.hash,
            prev_hash="" if after_redacted else row.prev_hash,
        )
    return shown


def _preceding(session: Session, ids: Iterable[int], *, tenant: str) -> list[AuditEvent]:
    """The events just before the page's, where they are this tenant's and could be redacted: only their
    hash (the next event's prev_hash) matters, so other events are not read."""
    wanted = sorted(set(ids))
    if not wanted:
        return []
    stmt = select(AuditEvent).where(
        AuditEvent.id.in_(wanted), AuditEvent.tenant == tenant, AuditEvent.event_type.in_(FACT_EVENTS)
    )
    return list(session.scalars(stmt))


def _subject(row: AuditEvent) -> tuple[str, str] | None:
    """("output" | "request", id) the event is about, if it is an event that carries facts."""
    payload = row.payload or {}
    for kind, table in (("output", _OUTPUT_FACTS), ("request", _REQUEST_FACTS)):
        if row.event_type in table:
            value = payload.get(table[row.event_type][0])
            return (kind, value) if isinstance(value, str) else None
    return None


def _withheld(session: Session, rows: Sequence[AuditEvent]) -> set[int]:
    """Ids of the rows whose output (or request) is withheld."""
    subjects = {row.id: s for row in rows if (s := _subject(row)) is not None}
    outputs = {ident for kind, ident in subjects.values() if kind == "output"}
    requests = {ident for kind, ident in subjects.values() if kind == "request"}
    withheld_outputs: set[str] = set()
    if outputs:
        stmt = select(GenerationOutput.id).where(
            GenerationOutput.id.in_(outputs), GenerationOutput.action.in_(_WITHHELD)
        )
        withheld_outputs = set(session.scalars(stmt))
    released_requests: set[str] = set()
    if requests:
        completed = set(
            session.scalars(
                select(GenerationRequest.id).where(
                    GenerationRequest.id.in_(requests), GenerationRequest.status == RequestStatus.COMPLETED
                )
            )
        )
        with_withheld = set(
            session.scalars(
                select(GenerationOutput.generation_request_id).where(
                    GenerationOutput.generation_request_id.in_(completed),
                    GenerationOutput.action.in_(_WITHHELD),
                )
            )
        )
        released_requests = completed - with_withheld
    return {
        row_id
        for row_id, (kind, ident) in subjects.items()
        if (kind == "output" and ident in withheld_outputs)
        or (kind == "request" and ident not in released_requests)
    }


def _redact(row: AuditEvent) -> dict[str, Any]:
    payload = copy.deepcopy(dict(row.payload or {}))
    facts = (_OUTPUT_FACTS.get(row.event_type) or _REQUEST_FACTS[row.event_type])[1]
    taken = [name for name in facts if _take(payload, name)]
    payload["redacted"] = taken
    return payload


def _take(payload: dict[str, Any], name: str) -> bool:
    """Removes `name` from `payload`; whether there was anything to remove."""
    if "[]." in name:
        key, _, inner = name.partition("[].")
        items = payload.get(key)
        found = False
        for item in items if isinstance(items, list) else []:
            if isinstance(item, dict) and inner in item:
                del item[inner]
                found = True
        return found
    key, _, inner = name.partition(".")
    if inner:
        nested = payload.get(key)
        return isinstance(nested, dict) and _take(nested, inner)
    if key not in payload:
        return False
    del payload[key]
    return True
