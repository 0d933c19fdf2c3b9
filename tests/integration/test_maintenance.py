"""After a crash: interrupted requests end up failed (with an audit event), lapsed claims return."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from gateway.audit import events, query
from gateway.ops.maintenance import INTERRUPTED, fail_stale_requests, sweep
from gateway.storage.base import utcnow
from gateway.storage.engine import make_engine, make_session_factory
from gateway.storage.models import GenerationRequest, RequestStatus
from gateway.storage.records import record_request, set_request_status


def test_stale_open_requests_are_failed_and_fresh_ones_kept(db_url: str) -> None:
    engine = make_engine(db_url)
    sessions = make_session_factory(engine)
    now = utcnow()
    with sessions() as s, s.begin():
        old = record_request(session=s, request_id="crashed-1", tenant="t", model_id="m", prompt_count=1)
        set_request_status(
            session=s, request=old, status=RequestStatus.GENERATING, now=now - timedelta(hours=1)
        )
        fresh = record_request(session=s, request_id="running-1", tenant="t", model_id="m", prompt_count=1)
        done = record_request(session=s, request_id="done-1", tenant="t", model_id="m", prompt_count=1)
        set_request_status(
            session=s, request=done, status=RequestStatus.COMPLETED, now=now - timedelta(hours=1)
        )
        ids = old.id, fresh.id, done.id
    with sessions() as s, s.begin():
        assert fail_stale_requests(session=s, older_than=timedelta(minutes=15)) == 1
    with sessions() as s:
        status = {
            r.id: (r.status, r.error)
            for r in s.scalars(select(GenerationRequest).where(GenerationRequest.id.in_(ids)))
        }
        assert status[ids[0]] == (RequestStatus.FAILED, INTERRUPTED)
        assert status[ids[1]][0] == RequestStatus.RECEIVED
        assert status[ids[2]][0] == RequestStatus.COMPLETED
        trail = query(session=s, request_id="crashed-1")
        assert [e.event_type for e in trail] == [events.GENERATION_FAILED]
    assert sweep(sessions, stale_after=timedelta(minutes=15)) == (0, 0, 0), "a second pass finds nothing"
    engine.dispose()
