import pytest

from gateway.ratelimit import Limits, RateLimited, RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_requests_per_minute_with_retry_delay() -> None:
    clock = Clock()
    limiter = RateLimiter(clock)
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


def test_tokens_are_reserved_then_refunded() -> None:
    clock = Clock()
    limiter = RateLimiter(clock)
    limits = Limits(tokens_per_minute=100)
    limiter.admit("k", limits, tokens=80)
    with pytest.raises(RateLimited) as info:
        limiter.admit("k", limits, tokens=30)
    assert info.value.retry_after_s == pytest.approx(6.0)  # 10 tokens missing at 100/60 per second
    limiter.refund("k", limits, tokens=70)  # only 10 were generated
    limiter.admit("k", limits, tokens=30)


def test_a_refused_request_takes_nothing() -> None:
    limiter = RateLimiter(Clock())
    limits = Limits(requests_per_minute=10, tokens_per_minute=50)
    limiter.admit("k", limits, tokens=50)
    for _ in range(5):
        with pytest.raises(RateLimited):
            limiter.admit("k", limits, tokens=10)
    limiter.refund("k", limits, tokens=50)
    for _ in range(5):  # the refused calls did not use up the request budget
        limiter.admit("k", limits, tokens=10)


def test_request_larger_than_the_quota_is_refused_outright() -> None:
    with pytest.raises(RateLimited, match="more than the key's quota of 100 tokens per minute"):
        RateLimiter(Clock()).admit("k", Limits(tokens_per_minute=100), tokens=101)


def test_unlimited_by_default() -> None:
    limiter = RateLimiter(Clock())
    for _ in range(1000):
        limiter.admit("k", Limits(), tokens=10_000)
