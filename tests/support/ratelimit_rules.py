"""The rate-limit rules every limiter must follow, as scenarios over a limiter and its fake clock.

Run against the in-process limiter (tests/unit/gateway/test_ratelimit.py) and the database one on
SQLite and PostgreSQL (tests/db/test_rate_buckets.py), so the two cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from gateway.errors import InvalidArgument
from gateway.pipeline.ratelimit import Limiter, Limits, RateLimited


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def requests_per_minute_with_retry_delay(limiter: Limiter, clock: Clock) -> None:
    limits = Limits(requests_per_minute=3)
    for _ in range(3):
        limiter.admit("k", limits, tokens=10)
    with pytest.raises(RateLimited) as info:
        limiter.admit("k", limits, tokens=10)
    assert info.value.retry_after_s == pytest.approx(20.0)  # one request refills every 20 s
    assert "requests per minute" in str(info.value)
    limiter.admit("other", limits, tokens=10)  # keys are independent
    clock.now += 20.0
    limiter.admit("k", limits, tokens=10)


def tokens_are_reserved_then_refunded(limiter: Limiter, clock: Clock) -> None:
    limits = Limits(tokens_per_minute=100)
    limiter.admit("k", limits, tokens=80)
    with pytest.raises(RateLimited) as info:
        limiter.admit("k", limits, tokens=30)
    assert info.value.retry_after_s == pytest.approx(6.0)  # 10 tokens missing at 100/60 per second
    limiter.refund("k", limits, tokens=70)  # only 10 were generated
    limiter.admit("k", limits, tokens=30)
    limiter.refund("k", limits, tokens=1000)  # never above the bucket's size
    limiter.admit("k", limits, tokens=100)
    with pytest.raises(RateLimited):
        limiter.admit("k", limits, tokens=1)


def a_refused_request_takes_nothing(limiter: Limiter, clock: Clock) -> None:
    limits = Limits(requests_per_minute=10, tokens_per_minute=50)
    limiter.admit("k", limits, tokens=50)
    for _ in range(5):
        with pytest.raises(RateLimited):
            limiter.admit("k", limits, tokens=10)
    limiter.refund("k", limits, tokens=50)
    for _ in range(5):  # the refused calls did not use up the request budget
        limiter.admit("k", limits, tokens=10)


def request_larger_than_the_quota_is_refused_outright(limiter: Limiter, clock: Clock) -> None:
    with pytest.raises(InvalidArgument, match="more than the key's quota of 100 tokens per minute"):
        limiter.admit("k", Limits(tokens_per_minute=100), tokens=101)


def unlimited_by_default(limiter: Limiter, clock: Clock) -> None:
    for _ in range(1000):
        limiter.admit("k", Limits(), tokens=10_000)


def a_changed_limit_starts_full(limiter: Limiter, clock: Clock) -> None:
    limiter.admit("k", Limits(requests_per_minute=1), tokens=1)
    with pytest.raises(RateLimited):
        limiter.admit("k", Limits(requests_per_minute=1), tokens=1)
    for _ in range(5):  # the operator raised the key's limit: the new bucket starts full
        limiter.admit("k", Limits(requests_per_minute=5), tokens=1)
    with pytest.raises(RateLimited):
        limiter.admit("k", Limits(requests_per_minute=5), tokens=1)


def a_clock_going_back_neither_refills_nor_drains(limiter: Limiter, clock: Clock) -> None:
    limits = Limits(requests_per_minute=60)  # one per second
    for _ in range(60):
        limiter.admit("k", limits, tokens=1)
    clock.now -= 30.0  # another replica's clock, 30 s behind
    with pytest.raises(RateLimited):
        limiter.admit("k", limits, tokens=1)
    clock.now += 31.0  # 1 s after the last admission on the fastest clock: one request back
    limiter.admit("k", limits, tokens=1)
    with pytest.raises(RateLimited):
        limiter.admit("k", limits, tokens=1)


RULES: list[Callable[[Limiter, Clock], None]] = [
    requests_per_minute_with_retry_delay,
    tokens_are_reserved_then_refunded,
    a_refused_request_takes_nothing,
    request_larger_than_the_quota_is_refused_outright,
    unlimited_by_default,
    a_changed_limit_starts_full,
    a_clock_going_back_neither_refills_nor_drains,
]
