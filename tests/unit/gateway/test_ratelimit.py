"""The in-process limiter follows the shared rules (tests/support/ratelimit_rules.py)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from gateway.pipeline.ratelimit import Limiter, RateLimiter
from tests.support.ratelimit_rules import RULES, Clock


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.__name__)
def test_in_process_limiter(rule: Callable[[Limiter, Clock], None]) -> None:
    clock = Clock()
    rule(RateLimiter(clock), clock)
