"""Per-key rate limits: requests per minute and generated tokens per minute.

Token buckets refilled continuously. Tokens are reserved on admission for the most a request can
generate (prompts x sequences x max_new_tokens) and the unused part is given back when it ends, so that
a burst of long requests cannot overshoot the quota. Buckets live in this process: with several gateway
replicas, each enforces the limit on its own (docs/operations.md).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from gateway.errors import ResourceExhausted


class RateLimited(ResourceExhausted):
    """Over a per-key limit; `retry_after_s` says when the request would fit."""

    def __init__(self, message: str, *, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class Limits:
    """Per minute; 0 means unlimited."""

    requests_per_minute: int = 0
    tokens_per_minute: int = 0

    def overridden(self, *, requests_per_minute: int | None, tokens_per_minute: int | None) -> Limits:
        """These limits with a key's own values where it has them (None: keep the default)."""
        return Limits(
            requests_per_minute=self.requests_per_minute
            if requests_per_minute is None
            else requests_per_minute,
            tokens_per_minute=self.tokens_per_minute if tokens_per_minute is None else tokens_per_minute,
        )


class _Bucket:
    def __init__(self, per_minute: int, now: float) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.level = self.capacity
        self.stamp = now

    def refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    def wait_for(self, amount: float) -> float:
        return max(0.0, (amount - self.level) / self.rate)


class RateLimiter:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[tuple[str, str], _Bucket] = {}

    def _bucket(self, key: str, kind: str, per_minute: int, now: float) -> _Bucket:
        bucket = self._buckets.get((key, kind))
        if bucket is None or bucket.capacity != per_minute:  # new key, or its limit changed
            bucket = self._buckets[(key, kind)] = _Bucket(per_minute, now)
        bucket.refill(now)
        return bucket

    def admit(self, key: str, limits: Limits, *, tokens: int) -> None:
        """Takes one request and reserves `tokens`, or raises RateLimited without taking anything."""
        with self._lock:
            now = self._clock()
            wanted: list[tuple[_Bucket, float, str]] = []
            if limits.requests_per_minute:
                wanted.append(
                    (self._bucket(key, "requests", limits.requests_per_minute, now), 1.0, "requests")
                )
            if limits.tokens_per_minute:
                if tokens > limits.tokens_per_minute:
                    raise RateLimited(
                        f"this request may generate {tokens} tokens, more than the key's quota of "
                        f"{limits.tokens_per_minute} tokens per minute; ask for fewer",
                        retry_after_s=60.0,
                    )
                wanted.append(
                    (self._bucket(key, "tokens", limits.tokens_per_minute, now), float(tokens), "tokens")
                )
            waits = [(b.wait_for(amount), kind) for b, amount, kind in wanted]
            wait, kind = max(waits, default=(0.0, ""))
            if wait > 0:
                retry = math.ceil(wait * 10) / 10
                raise RateLimited(
                    f"rate limit for this API key exceeded ({kind} per minute); retry in {retry:.1f}s",
                    retry_after_s=retry,
                )
            for bucket, amount, _ in wanted:
                bucket.level -= amount

    def refund(self, key: str, limits: Limits, *, tokens: int) -> None:
        """Gives back reserved tokens that were not generated."""
        if not limits.tokens_per_minute or tokens <= 0:
            return
        with self._lock:
            bucket = self._bucket(key, "tokens", limits.tokens_per_minute, self._clock())
            bucket.level = min(bucket.capacity, bucket.level + tokens)
