"""gateway/audit/redact.py on both databases: which events a tenant's auditor gets without their facts.

The gRPC path (a real held output, paging, the operator's view) is in
tests/integration/test_audit_withheld_facts.py; these are the states a request passes through."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from gateway.audit import append, events
from gateway.audit.redact import for_tenant
from gateway.storage.models import AuditEvent, GenerationRequest, ModerationAction, RequestStatus
from gateway.storage.records import record_request
from tests.support.held import record_one

SEED = 8_765_432_109_876_543_210 % 2**63


def _request(s: Session, tenant: str, n: int) -> GenerationRequest:
    request = record_request(
        session=s,
        request_id=f"req-{tenant}-{n}",
        tenant=tenant,
        model_id="m",
        prompt_count=1,
        parameters={"seed": SEED, "max_new_tokens": 4},
    )
    append(
        session=s,
        event_type=events.REQUEST_RECEIVED,
        actor="gateway",
        tenant=tenant,
        request_id=request.request_id,
        payload={
            "generation_request": request.id,
            "seed": SEED,
            "parameters": {"seed": SEED, "max_new_tokens": 4},
        },
    )
    return request


def _output(s: Session, request: GenerationRequest, action: ModerationAction) -> None:
    output = record_one(
        s,
        request=request,
        action=action,
        masked_text="*" if action is ModerationAction.MASK else None,
        generated_tokens=4,
        finish_reason="length",
    )
    request.status = RequestStatus.COMPLETED
    payload: dict[str, Any] = {"output": output.id, "generated_tokens": 4, "finish_reason": "length"}
    append(
        session=s,
        event_type=events.GENERATION_COMPLETED,
        actor="gateway",
        tenant=request.tenant,
        request_id=request.request_id,
        payload=payload,
    )


def _shown(db: sessionmaker[Session], tenant: str) -> tuple[list[AuditEvent], dict[int, Any]]:
    with db() as s:
        rows = list(s.scalars(select(AuditEvent).where(AuditEvent.tenant == tenant).order_by(AuditEvent.id)))
        return rows, for_tenant(s, rows, tenant=tenant)


def test_a_request_still_generating_shows_no_seed(db: sessionmaker[Session]) -> None:
    with db() as s, s.begin():
        _request(s, "acme", 1)
    (row,), shown = _shown(db, "acme")
    assert shown[row.id].payload == {
        "generation_request": row.payload["generation_request"],
        "parameters": {"max_new_tokens": 4},
        "redacted": ["seed", "parameters.seed"],
    }
    assert shown[row.id].hash == ""


def test_a_released_or_masked_request_is_shown_whole(db: sessionmaker[Session]) -> None:
    with db() as s, s.begin():
        for n, action in enumerate((ModerationAction.RELEASE, ModerationAction.MASK)):
            _output(s, _request(s, "acme", n), action)
    rows, shown = _shown(db, "acme")
    assert len(rows) == 4 and shown == {}


def test_a_blocked_output_and_its_request_lose_their_facts(db: sessionmaker[Session]) -> None:
    with db() as s, s.begin():
        _output(s, _request(s, "acme", 1), ModerationAction.BLOCK)
    (received, completed), shown = _shown(db, "acme")
    assert shown[completed.id].payload["redacted"] == ["generated_tokens", "finish_reason"]
    assert "generated_tokens" not in shown[completed.id].payload
    assert shown[completed.id].prev_hash == "" and shown[received.id].hash == ""


def test_another_tenants_withheld_event_hides_nothing_of_the_next(db: sessionmaker[Session]) -> None:
    """Its hash covers ids this reader cannot guess: as this tenant's prev_hash it confirms nothing."""
    with db() as s, s.begin():
        _request(s, "globex", 1)  # generating: withheld for globex's auditor
        _output(s, _request(s, "acme", 1), ModerationAction.RELEASE)
    rows, shown = _shown(db, "acme")
    assert len(rows) == 2 and shown == {}
    rows, shown = _shown(db, "globex")
    assert list(shown) == [rows[0].id]
