"""The login throttle: attempts counted before the check, a global limit, eviction of the oldest key."""

from __future__ import annotations

import pytest

from gateway.errors import ResourceExhausted
from gateway.web.security import LoginThrottle


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_attempts_count_before_the_outcome_is_known() -> None:
    """Five attempts in flight (none has failed yet) already use up the key's budget."""
    throttle = LoginThrottle(max_failures=5, clock=Clock())
    key = ("10.0.0.1", "rita")
    for _ in range(5):
        throttle.attempt(key)
    with pytest.raises(ResourceExhausted, match="too many failed logins; try again in 301 s"):
        throttle.attempt(key)
    throttle.attempt(("10.0.0.1", "ravi"))  # another username is counted apart


def test_a_success_forgets_the_key_and_the_window_slides() -> None:
    clock = Clock()
    throttle = LoginThrottle(max_failures=2, window_s=300, clock=clock)
    key = ("10.0.0.1", "rita")
    throttle.attempt(key)
    throttle.succeeded(key)
    throttle.attempt(key)
    throttle.attempt(key)
    with pytest.raises(ResourceExhausted):
        throttle.attempt(key)
    clock.now += 300
    throttle.attempt(key)


def test_refused_attempts_do_not_extend_the_lockout() -> None:
    clock = Clock()
    throttle = LoginThrottle(max_failures=1, window_s=60, clock=clock)
    key = ("a", "b")
    throttle.attempt(key)
    for _ in range(10):
        clock.now += 5
        with pytest.raises(ResourceExhausted):
            throttle.attempt(key)
    clock.now += 10
    throttle.attempt(key)


def test_the_global_limit_bounds_a_spray_of_usernames() -> None:
    clock = Clock()
    throttle = LoginThrottle(global_max=20, global_window_s=60, clock=clock)
    for n in range(20):
        throttle.attempt((f"10.0.{n}.1", f"user{n}"))
    with pytest.raises(ResourceExhausted, match="too many logins on this server"):
        throttle.attempt(("10.9.9.9", "rita"))
    clock.now += 60
    throttle.attempt(("10.9.9.9", "rita"))


def test_past_the_bound_the_oldest_keys_are_evicted_not_all() -> None:
    clock = Clock()
    throttle = LoginThrottle(max_failures=3, max_tracked=100, global_max=10_000, clock=clock)
    target = ("10.0.0.1", "rita")
    for _ in range(3):
        throttle.attempt(target)
    for n in range(99):
        clock.now += 0.01
        throttle.attempt(("10.0.0.2", f"spray{n}"))
    assert len(throttle) == 100
    with pytest.raises(ResourceExhausted):
        throttle.attempt(target)  # still remembered, and refreshed as the most recently tried
    for n in range(99, 150):
        throttle.attempt(("10.0.0.2", f"spray{n}"))
    assert len(throttle) == 100, "bounded"
    assert target in throttle, "the target was tried recently: the oldest sprayed names went first"
    assert ("10.0.0.2", "spray0") not in throttle
