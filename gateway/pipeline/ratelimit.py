"""Per-key rate limits: requests per minute and generated tokens per minute.

Token buckets refilled continuously. Tokens are reserved on admission for the most a request can
generate (prompts x sequences x max_new_tokens) and the unused part is given back when it ends, so that
a burst of long requests cannot overshoot the quota.

Two places to keep the buckets, one rule (`wants`, `refilled`, `check`):

- `RateLimiter` (`rate_limit_store = "memory"`, the default): in this process. Free, but with several
  gateway replicas each enforces the limit on its own.
- `gateway.storage.rate_buckets.DatabaseRateLimiter` (`rate_limit_store = "database"`): in the
  `rate_buckets` table, taken under a row lock in one short transaction per admission, so every replica
  on the same PostgreSQL database draws from the same buckets.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from gateway.errors import InvalidArgument, ResourceExhausted

__all__ = [
    "Limiter",
    "Limits",
    "RateLimited",
    "RateLimiter",
    "Want",
    "check",
    "refilled",
    "wants",
]

REQUESTS, TOKENS = "requests", "tokens"


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

    @property
    def unlimited(self) -> bool:
        return not self.requests_per_minute and not self.tokens_per_minute

    def overridden(self, *, requests_per_minute: int | None, tokens_per_minute: int | None) -> Limits:
        """These limits with a key's own values where it has them (None: keep the default)."""
        return Limits(
            requests_per_minute=self.requests_per_minute
            if requests_per_minute is None
            else requests_per_minute,
            tokens_per_minute=self.tokens_per_minute if tokens_per_minute is None else tokens_per_minute,
        )


@dataclass(frozen=True)
class Want:
    """What one admission takes from one bucket."""

    kind: str  # REQUESTS or TOKENS
    per_minute: int  # the bucket's size and refill per minute
    amount: float


def wants(limits: Limits, tokens: int) -> list[Want]:
    """The buckets an admission draws on. A request larger than the whole token quota can never fit:
    refused here, with no bucket touched."""
    out: list[Want] = []
    if limits.requests_per_minute:
        out.append(Want(REQUESTS, limits.requests_per_minute, 1.0))
    if limits.tokens_per_minute:
        if tokens > limits.tokens_per_minute:
            # Not RESOURCE_EXHAUSTED with a RetryInfo: waiting never helps, and retrying clients would
            # wait for nothing. The request itself must change.
            raise InvalidArgument(
                "max_new_tokens",
                f"this request may generate {tokens} tokens (prompts x sequences x max_new_tokens), more "
                f"than the key's quota of {limits.tokens_per_minute} tokens per minute; ask for fewer",
            )
        out.append(Want(TOKENS, limits.tokens_per_minute, float(tokens)))
    return out


def refilled(level: float, stamp: float, per_minute: int, now: float) -> float:
    """A bucket's level at `now`. A clock that went backwards (another replica's, or a step of this
    one's) refills nothing rather than draining the bucket."""
    return min(float(per_minute), level + max(0.0, now - stamp) * per_minute / 60.0)


def check(wanted: list[Want], levels: list[float]) -> None:
    """Raises RateLimited (with the longest wait) unless every bucket holds what is wanted from it."""
    waits = [
        (max(0.0, (w.amount - level) / (w.per_minute / 60.0)), w.kind)
        for w, level in zip(wanted, levels, strict=True)
    ]
    wait, kind = max(waits, default=(0.0, ""))
    if wait > 0:
        retry = math.ceil(wait * 10) / 10
        raise RateLimited(
            f"rate limit for this API key exceeded ({kind} per minute); retry in {retry:.1f}s",
            retry_after_s=retry,
        )


class Limiter(Protocol):
    """What the pipeline needs. Both calls may block (a database transaction): run them off the loop."""

    def admit(self, key: str, limits: Limits, *, tokens: int) -> None:
        """Takes one request and reserves `tokens`, or raises RateLimited without taking anything."""
        ...

    def refund(self, key: str, limits: Limits, *, tokens: int) -> None:
        """Gives back reserved tokens that were not generated."""
        ...


class _Bucket:
    def __init__(self, per_minute: int, now: float) -> None:
        self.per_minute = per_minute
        self.level = float(per_minute)
        self.stamp = now

    def refill(self, now: float) -> None:
        self.level = refilled(self.level, self.stamp, self.per_minute, now)
        self.stamp = max(self.stamp, now)


class RateLimiter:
    """Buckets in this process (monotonic clock)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[tuple[str, str], _Bucket] = {}

    def _bucket(self, key: str, kind: str, per_minute: int, now: float) -> _Bucket:
        bucket = self._buckets.get((key, kind))
        if bucket is None or bucket.per_minute != per_minute:  # new key, or its limit changed
            bucket = self._buckets[(key, kind)] = _Bucket(per_minute, now)
        bucket.refill(now)
        return bucket

    def admit(self, key: str, limits: Limits, *, tokens: int) -> None:
        wanted = wants(limits, tokens)
        with self._lock:
            now = self._clock()
            buckets = [self._bucket(key, w.kind, w.per_minute, now) for w in wanted]
            check(wanted, [b.level for b in buckets])
            for bucket, w in zip(buckets, wanted, strict=True):
                bucket.level -= w.amount

    def refund(self, key: str, limits: Limits, *, tokens: int) -> None:
        if not limits.tokens_per_minute or tokens <= 0:
            return
        with self._lock:
            bucket = self._bucket(key, TOKENS, limits.tokens_per_minute, self._clock())
            bucket.level = min(float(bucket.per_minute), bucket.level + tokens)
