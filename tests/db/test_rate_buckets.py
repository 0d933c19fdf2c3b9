"""The shared (database) rate limiter on SQLite and PostgreSQL: the same rules as the in-process one,
and one limit across replicas, also when they race for the last request."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from gateway.pipeline.ratelimit import Limiter, Limits, RateLimited
from gateway.storage import make_engine, make_session_factory
from gateway.storage.models import RateBucket
from gateway.storage.rate_buckets import DatabaseRateLimiter
from tests.support.ratelimit_rules import RULES, Clock


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.__name__)
def test_database_limiter(rule: Callable[[Limiter, Clock], None], db: sessionmaker[Session]) -> None:
    clock = Clock()
    rule(DatabaseRateLimiter(db, clock), clock)


def test_replicas_share_one_limit_even_when_racing(db_url: str) -> None:
    """Six replicas (each its own engine, i.e. its own connections) ask 4 times each for a key allowed
    10 requests per minute, all at once: exactly 10 get in."""
    clock = Clock()
    engines = [make_engine(db_url) for _ in range(6)]
    limiters = [DatabaseRateLimiter(make_session_factory(e), clock) for e in engines]
    limits = Limits(requests_per_minute=10, tokens_per_minute=10_000)
    barrier = threading.Barrier(len(limiters))

    def replica(limiter: DatabaseRateLimiter) -> int:
        barrier.wait()
        admitted = 0
        for _ in range(4):
            try:
                limiter.admit("key-1", limits, tokens=100)
                admitted += 1
            except RateLimited:
                pass
        return admitted

    try:
        with ThreadPoolExecutor(len(limiters)) as pool:
            assert sum(pool.map(replica, limiters)) == 10
        with make_session_factory(engines[0])() as s:
            buckets = {b.kind: b.level for b in s.scalars(select(RateBucket))}
        assert buckets == {"requests": pytest.approx(0.0), "tokens": pytest.approx(9000.0)}
    finally:
        for e in engines:
            e.dispose()
