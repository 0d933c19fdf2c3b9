"""The maintenance sweep does its work once when several replicas run it at the same moment.

Real processes on one PostgreSQL database (each replica runs `sweep` on its own timer, so passes do
meet): every interrupted request is failed once, every lapsed claim released once, every held output past
its review deadline decided once, with one audit event each (and one outbox event for each deadline),
and the sweeps' own counts add up to the work there was.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from gateway.audit import events, verify
from gateway.review import claim_next, create_reviewer
from gateway.review.queue import DEADLINE_ACTOR
from gateway.storage import make_engine, make_session_factory
from gateway.storage.base import utcnow
from gateway.storage.models import (
    AuditEvent,
    GenerationOutput,
    GenerationRequest,
    OutputStatus,
    RequestStatus,
    ReviewItem,
    ReviewState,
    WebhookDelivery,
)
from gateway.storage.records import record_request
from gateway.webhooks import events as webhook_events
from gateway.webhooks.endpoints import create_endpoint
from tests.support.held import hold_output
from tests.support.pg import PostgresServer

pytestmark = pytest.mark.postgres

STALE_REQUESTS = 60
LAPSED_CLAIMS = 20
OVERDUE = 30  # held outputs past the review deadline of their policy
REPLICAS = 4

SWEEPER = """
import sys, time
from datetime import timedelta
from gateway.ops.maintenance import sweep
from gateway.review.deadlines import Deadline, DeadlineAction
from gateway.storage import make_engine, make_session_factory
url, start = sys.argv[1], float(sys.argv[2])
engine = make_engine(url)
sessions = make_session_factory(engine)
deadlines = {"default": Deadline(after=timedelta(hours=1), action=DeadlineAction.REJECT)}
time.sleep(max(0.0, start - time.time()))
print(*sweep(sessions, stale_after=timedelta(minutes=15), deadlines=deadlines))
engine.dispose()
"""


@pytest.fixture
def pg_url(pg_server: PostgresServer, pg_template: str) -> str:
    return pg_server.url_for(pg_server.create(template=pg_template))


def _seed(url: str) -> None:
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    past = utcnow() - timedelta(hours=1)
    with sessions() as s, s.begin():
        reviewer = create_reviewer(session=s, username="r1", password="correct horse battery")
        create_endpoint(
            session=s,
            tenant="acme",
            url="https://hooks.example/modgate",
            events=[webhook_events.REVIEW_DEADLINE_PASSED],
            actor="test",
        )
        for n in range(STALE_REQUESTS):
            record_request(session=s, request_id=f"req-{n}", tenant="acme", model_id="m", prompt_count=1)
        for n in range(STALE_REQUESTS, STALE_REQUESTS + LAPSED_CLAIMS):
            # answered with a held output, whose claim then lapses
            item = hold_output(s, request_id=f"req-{n}", text="withheld", scores={"toxicity": 0.7})
            item.output.request.status = RequestStatus.COMPLETED
        s.flush()
        s.execute(
            update(GenerationRequest)
            .where(GenerationRequest.status == RequestStatus.RECEIVED)
            .values(status=RequestStatus.GENERATING, updated_at=past)
        )
        for _ in range(LAPSED_CLAIMS):
            assert claim_next(session=s, reviewer=reviewer, lease_seconds=60, now=past) is not None
        # After the claims (which take the oldest items first): pending, held for two hours, past the
        # one-hour deadline. The items whose claims lapse are new: not overdue once released.
        first = STALE_REQUESTS + LAPSED_CLAIMS
        for n in range(first, first + OVERDUE):
            item = hold_output(s, request_id=f"req-{n}", text="withheld", scores={"toxicity": 0.7})
            item.output.request.status = RequestStatus.COMPLETED
            item.created_at = utcnow() - timedelta(hours=2)
    engine.dispose()


def test_concurrent_sweeps_do_each_piece_of_work_once(pg_url: str) -> None:
    _seed(pg_url)
    start = time.time() + 6  # after every process has imported the gateway: the passes really meet
    env = {**os.environ, "MODGATE_CONFIG": ""}
    sweepers = [
        subprocess.Popen(
            [sys.executable, "-c", SWEEPER, pg_url, str(start)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(REPLICAS)
    ]
    results = [p.communicate(timeout=120) for p in sweepers]
    for process, (_out, err) in zip(sweepers, results, strict=True):
        assert process.returncode == 0, err
    counts = [tuple(int(x) for x in out.split()) for out, _ in results]
    assert sum(c[0] for c in counts) == STALE_REQUESTS, counts
    assert sum(c[1] for c in counts) == LAPSED_CLAIMS, counts
    assert sum(c[2] for c in counts) == OVERDUE, counts

    engine = make_engine(pg_url)
    sessions = make_session_factory(engine)
    with sessions() as s:
        statuses = Counter(s.scalars(select(GenerationRequest.status)).all())
        assert statuses == {
            RequestStatus.FAILED: STALE_REQUESTS,
            RequestStatus.COMPLETED: LAPSED_CLAIMS + OVERDUE,
        }
        states = Counter(s.scalars(select(ReviewItem.state)).all())
        assert states == {ReviewState.PENDING: LAPSED_CLAIMS, ReviewState.REJECTED: OVERDUE}
        rejected = s.scalars(select(ReviewItem).where(ReviewItem.state == ReviewState.REJECTED)).all()
        overdue_tickets = {item.output.ticket for item in rejected}
        assert len(overdue_tickets) == OVERDUE
        assert all(item.version == 2 and item.decided_at is not None for item in rejected), "decided once"
        assert set(
            s.scalars(
                select(GenerationOutput.status).where(GenerationOutput.ticket.in_(overdue_tickets))
            ).all()
        ) == {OutputStatus.REJECTED}
        passed = s.scalars(
            select(AuditEvent).where(AuditEvent.event_type == events.REVIEW_DEADLINE_PASSED)
        ).all()
        assert Counter(e.ticket for e in passed) == dict.fromkeys(overdue_tickets, 1), "one audit event each"
        assert {e.actor for e in passed} == {DEADLINE_ACTOR}
        outbox = Counter(
            s.scalars(
                select(WebhookDelivery.ticket).where(
                    WebhookDelivery.event_type == webhook_events.REVIEW_DEADLINE_PASSED
                )
            ).all()
        )
        assert outbox == dict.fromkeys(overdue_tickets, 1), "one outbox event each"
        per_request = Counter(
            s.scalars(
                select(AuditEvent.request_id).where(AuditEvent.event_type == events.GENERATION_FAILED)
            ).all()
        )
        assert len(per_request) == STALE_REQUESTS and set(per_request.values()) == {1}
        expired = Counter(
            s.scalars(
                select(AuditEvent.request_id).where(AuditEvent.event_type == events.REVIEW_LEASE_EXPIRED)
            ).all()
        )
        assert len(expired) == LAPSED_CLAIMS and set(expired.values()) == {1}
        assert verify(session=s).ok
    engine.dispose()
