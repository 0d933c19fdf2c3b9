"""Races, with real threads and one session each: claims, decisions and audit appends never collide.

These run on SQLite (one writer, BEGIN IMMEDIATE + conditional UPDATEs) and PostgreSQL (row locks
with SKIP LOCKED, an advisory lock for the audit chain), the two ways the gateway is deployed.
"""

from __future__ import annotations

import shutil
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from gateway import audit
from gateway.review import AlreadyDecided, StaleVersion, claim_next, decide
from gateway.storage import make_engine, make_session_factory
from gateway.storage.models import AuditEvent, Reviewer, ReviewItem, ReviewState
from tests.support.held import hold_output

T0 = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)
THREADS = 4
DECIDED_EVENTS = ("review.approved", "review.edited", "review.rejected")


def _race(n: int, work: Callable[[int], object]) -> list[object]:
    """Run ``work(i)`` in ``n`` threads that start together; return results or raised exceptions."""
    barrier = threading.Barrier(n)

    def run(i: int) -> object:
        barrier.wait()
        try:
            return work(i)
        except Exception as exc:
            return exc

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(run, range(n)))


def test_concurrent_reviewers_never_claim_the_same_item(
    db: sessionmaker[Session], add_held: Callable[..., ReviewItem], add_reviewer: Callable[..., Reviewer]
) -> None:
    items = {add_held(priority=0.5).id for _ in range(12)}
    reviewers = [add_reviewer() for _ in range(THREADS)]

    def claim_until_empty(i: int) -> list[str]:
        mine = []
        while True:
            with db() as s, s.begin():
                item = claim_next(session=s, reviewer=reviewers[i], lease_seconds=60, now=T0)
            if item is None:
                return mine
            mine.append(item.id)

    results = _race(THREADS, claim_until_empty)
    claimed = [item_id for r in results for item_id in r]  # type: ignore[union-attr]
    assert not [r for r in results if isinstance(r, Exception)]
    duplicates = [k for k, v in Counter(claimed).items() if v > 1]
    assert duplicates == []
    assert set(claimed) == items
    with db() as s:
        owners = {row.id: row.claimed_by for row in s.execute(select(ReviewItem.id, ReviewItem.claimed_by))}
    by_thread = {item_id: reviewers[i].id for i, r in enumerate(results) for item_id in r}  # type: ignore[union-attr]
    assert owners == by_thread  # the database agrees with what each reviewer was told


def test_one_item_two_reviewers_exactly_one_wins(
    db: sessionmaker[Session], add_held: Callable[..., ReviewItem], add_reviewer: Callable[..., Reviewer]
) -> None:
    for _ in range(3):  # a few rounds: a lucky interleaving should not hide a race
        item = add_held()
        reviewers = [add_reviewer(), add_reviewer()]

        results = _race(2, lambda i, pair=reviewers: _claim_once(db, pair[i]))
        won = [r for r in results if isinstance(r, ReviewItem)]
        assert len(won) == 1 and won[0].id == item.id, results
        assert results.count(None) == 1


def test_concurrent_decisions_on_one_item_exactly_one_wins(
    db: sessionmaker[Session], add_held: Callable[..., ReviewItem], add_reviewer: Callable[..., Reviewer]
) -> None:
    add_held(text="original")
    reviewer = add_reviewer()
    with db() as s, s.begin():
        item = claim_next(session=s, reviewer=reviewer, lease_seconds=60, now=T0)
    assert item is not None
    decisions = [("approve", None), ("edit", "edited one"), ("reject", None), ("edit", "edited two")]

    def decide_it(i: int) -> ReviewItem:
        decision, edited = decisions[i]
        with db() as s, s.begin():
            return decide(
                session=s,
                item_id=item.id,
                reviewer=reviewer,
                expected_version=item.version,
                decision=decision,
                edited_text=edited,
                now=T0 + timedelta(seconds=5),
            )

    results = _race(THREADS, decide_it)
    winners = [r for r in results if isinstance(r, ReviewItem)]
    losers = [r for r in results if not isinstance(r, ReviewItem)]
    assert len(winners) == 1, results
    assert all(isinstance(e, AlreadyDecided | StaleVersion) for e in losers), losers
    with db() as s:
        row = s.get(ReviewItem, item.id)
        assert row is not None and row.state == winners[0].state and row.version == item.version + 1
        decided_events = s.scalar(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.event_type.in_(DECIDED_EVENTS))
        )
        assert decided_events == 1  # one review.approved/edited/rejected, not one per thread
    assert row.state in {ReviewState.APPROVED, ReviewState.EDITED, ReviewState.REJECTED}


def test_concurrent_audit_appends_keep_one_chain(db: sessionmaker[Session]) -> None:
    per_thread = 15

    def append_many(i: int) -> int:
        for n in range(per_thread):
            with db() as s, s.begin():
                audit.append(session=s, event_type="request.received", actor=f"thread-{i}", payload={"n": n})
        return per_thread

    results = _race(THREADS, append_many)
    assert results == [per_thread] * THREADS
    with db() as s:
        result = audit.verify(session=s)
        ids = list(s.scalars(select(AuditEvent.id).order_by(AuditEvent.id)))
    assert result.ok, result
    assert result.checked == THREADS * per_thread
    assert ids == list(range(1, THREADS * per_thread + 1))


def test_sqlite_conditional_update_alone_is_race_free(
    sqlite_template: Path, tmp_path: Path, add_reviewer_to: Callable[..., Reviewer]
) -> None:
    """Without BEGIN IMMEDIATE (a plain engine, pysqlite's deferred transactions), two claimers can
    read the same candidate; the conditional UPDATE (WHERE version = seen) still lets only one win."""
    path = tmp_path / "plain.db"
    shutil.copyfile(sqlite_template, path)
    url = f"sqlite:///{path}"
    setup = make_engine(url)  # only to seed the data
    seed = make_session_factory(setup)
    for _ in range(6):
        with seed() as s, s.begin():
            hold_output(s, request_id="r", tenant="t", text="g", policy_name="p", priority=0.5)
    reviewers = [add_reviewer_to(seed) for _ in range(THREADS)]
    setup.dispose()

    plain = create_engine(url, connect_args={"timeout": 30})
    try:
        db = sessionmaker(plain, expire_on_commit=False)

        def claim_until_empty(i: int) -> list[str]:
            mine = []
            while (item := _claim_once(db, reviewers[i])) is not None:
                mine.append(item.id)
            return mine

        results = _race(THREADS, claim_until_empty)
    finally:
        plain.dispose()
    assert not [r for r in results if isinstance(r, Exception)], results
    claimed = [item_id for r in results for item_id in r]  # type: ignore[union-attr]
    assert len(claimed) == 6 and len(set(claimed)) == 6


def _claim_once(db: sessionmaker[Session], reviewer: Reviewer) -> ReviewItem | None:
    with db() as s, s.begin():
        return claim_next(session=s, reviewer=reviewer, lease_seconds=60, now=T0)
