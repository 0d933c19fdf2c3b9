"""The AuditService servicer: filtered, paged queries of the audit log, and chain verification.

A key with the `audit` scope reads its own tenant's events only, and those about withheld outputs without
the facts measured on the withheld text (gateway/audit/redact.py); events of other tenants and those of
no tenant (reviewer accounts, logins) need the operator scope `audit:all`, which reads the log as stored,
and so does `Verify`, whose walk covers every tenant's rows and whose counts would tell one tenant about
another's traffic. Seeds are decimal strings in the payload (a Struct's numbers are doubles).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC
from typing import Any

import grpc
from google.protobuf.struct_pb2 import Struct
from sqlalchemy.orm import Session, sessionmaker

from gateway import fields
from gateway.api.v1 import audit_pb2 as au_pb
from gateway.api.v1 import audit_pb2_grpc as au_grpc
from gateway.audit import MAX_LIMIT, query, redact, verify
from gateway.audit.redact import Shown
from gateway.errors import Forbidden, InvalidArgument
from gateway.pipeline.callers import AUDIT_ALL, current_caller
from gateway.rpc.services.convert import timestamp
from gateway.storage.models import AuditEvent
from gateway.storage.tx import in_transaction
from gateway.timewindow import check_window

DEFAULT_LIMIT = 100


# A protobuf Struct holds numbers as doubles, exact up to 2**53 only; seeds go up to 2**63 - 1.
_EXACT_IN_A_DOUBLE = 2**53


def lossless(value: Any, key: str = "") -> Any:
    """`value` for a Struct without loss: a seed, and any integer a double cannot hold exactly, as its
    decimal string (a seed is always a string, so that its type does not depend on its size)."""
    if isinstance(value, dict):
        return {k: lossless(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [lossless(v) for v in value]
    is_int = isinstance(value, int) and not isinstance(value, bool)
    return str(value) if is_int and (key == "seed" or abs(value) > _EXACT_IN_A_DOUBLE) else value


def event_to_pb(event: AuditEvent, shown: Shown | None = None) -> au_pb.AuditEvent:
    """`shown`: what a tenant-scoped reader sees in place of the stored payload and hashes
    (gateway/audit/redact.py)."""
    payload = Struct()
    payload.update(lossless(shown.payload if shown is not None else event.payload or {}))
    return au_pb.AuditEvent(
        id=event.id,
        created_at=timestamp(event.created_at),
        event_type=event.event_type,
        actor=event.actor,
        tenant=event.tenant or "",
        request_id=event.request_id or "",
        ticket=event.ticket or "",
        action=event.action or "",
        payload=payload,
        prev_hash=shown.prev_hash if shown is not None else event.prev_hash,
        hash=shown.hash if shown is not None else event.hash,
    )


class AuditServicer(au_grpc.AuditServiceServicer):
    def __init__(self, *, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    async def Query(self, request: au_pb.AuditQuery, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        limit = request.limit or DEFAULT_LIMIT
        if not 1 <= limit <= MAX_LIMIT:
            raise InvalidArgument("limit", f"must be between 1 and {MAX_LIMIT}, got {limit}")
        filters: dict[str, Any] = {
            name: fields.text(name, getattr(request, name)) or None
            for name in ("tenant", "request_id", "ticket", "actor", "event_type", "action")
        }
        own_tenant = current_caller().audit_tenant
        if own_tenant is not None:
            if filters["tenant"] not in (None, own_tenant):
                raise Forbidden(f"this API key reads its own tenant's audit events only ({AUDIT_ALL!r}: all)")
            filters["tenant"] = own_tenant
        for name in ("since", "until"):
            if request.HasField(name):
                filters[name] = getattr(request, name).ToDatetime(tzinfo=UTC)
        check_window(filters.get("since"), filters.get("until"))

        def work(session: Session) -> list[au_pb.AuditEvent]:
            try:
                rows = query(session=session, after_id=request.after_id or None, limit=limit, **filters)
            except ValueError as exc:  # a malformed filter, e.g. an impossible event type pattern
                raise InvalidArgument(str(exc)) from None
            shown = {} if own_tenant is None else redact.for_tenant(session, rows, tenant=own_tenant)
            return [event_to_pb(e, shown.get(e.id)) for e in rows]

        for event in await in_transaction(self._sessions, work):
            yield event

    async def Verify(self, request: au_pb.VerifyRequest, context: grpc.aio.ServicerContext) -> Any:
        if current_caller().audit_tenant is not None:
            raise Forbidden(f"verifying the whole audit chain needs the {AUDIT_ALL!r} scope")

        def work(session: Session) -> au_pb.VerifyResponse:
            result = verify(session=session)
            return au_pb.VerifyResponse(
                ok=result.ok,
                checked=result.checked,
                first_bad_id=result.first_bad_id or 0,
                problem=result.problem or "",
                head_id=result.head_id or 0,
                head_hash=result.head_hash or "",
            )

        return await in_transaction(self._sessions, work)
