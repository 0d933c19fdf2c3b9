"""The maintenance sweep does its work once when several replicas run it at the same moment.

Real processes on one PostgreSQL database (each replica runs `sweep` on its own timer, so passes do
meet): every interrupted request is failed once, every lapsed claim released once, with one audit event
each, and the sweeps' own counts add up to the work there was.
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
from gateway.storage import make_engine, make_session_factory
from gateway.storage.base import utcnow
from gateway.storage.models import AuditEvent, GenerationRequest, RequestStatus, ReviewItem, ReviewState
from gateway.storage.records import record_request
from tests.support.held import hold_output
from tests.support.pg import PostgresServer

pytestmark = pytest.mark.postgres

STALE_REQUESTS = 60
LAPSED_CLAIMS = 20
REPLICAS = 4

SWEEPER = """
import sys, time
from datetime import timedelta
from gateway.ops.maintenance import sweep
from gateway.storage import make_engine, make_session_factory
url, start = sys.argv[1], float(sys.argv[2])
engine = make_engine(url)
sessions = make_session_factory(engine)
time.sleep(max(0.0, start - time.time()))
failed, released, _ = sweep(sessions, stale_after=timedelta(minutes=15))
print(failed, released)
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

    engine = make_engine(pg_url)
    sessions = make_session_factory(engine)
    with sessions() as s:
        statuses = Counter(s.scalars(select(GenerationRequest.status)).all())
        assert statuses == {RequestStatus.FAILED: STALE_REQUESTS, RequestStatus.COMPLETED: LAPSED_CLAIMS}
        assert set(s.scalars(select(ReviewItem.state)).all()) == {ReviewState.PENDING}
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
