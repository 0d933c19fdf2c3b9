"""Reading back what the gateway recorded for a request: its row, its outputs and its audit events."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.storage.engine import make_engine
from gateway.storage.models import AuditEvent, GenerationOutput, GenerationRequest


def rows_for(
    db_url: str, request_id: str
) -> tuple[GenerationRequest, list[GenerationOutput], list[AuditEvent]]:
    engine = make_engine(db_url)
    with Session(engine) as s:
        req = s.scalars(select(GenerationRequest).where(GenerationRequest.request_id == request_id)).one()
        outputs = list(req.outputs)
        for o in outputs:
            _ = o.review_item
        audit = list(
            s.scalars(select(AuditEvent).where(AuditEvent.request_id == request_id).order_by(AuditEvent.id))
        )
        s.expunge_all()
    engine.dispose()
    return req, outputs, audit
