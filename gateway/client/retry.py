"""When a failed call is tried again, and after how long: one policy for the sync and asyncio clients.

Retried: UNAVAILABLE (the server is restarting or its database is briefly unreachable) and
RESOURCE_EXHAUSTED (a rate limit or the generation queue is full). When the server says how long to wait
(``google.rpc.RetryInfo`` in the status details, as the gateway's rate limiter does), that wait is used;
otherwise exponential backoff with jitter. Nothing is retried past the call's deadline, nor when the
server asks for a longer wait than ``max_wait_s`` (the caller decides then). Streams are retried only
before their first message: once text was received, a retry would not be the same stream.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

import grpc
from google.rpc import status_pb2
from google.rpc.error_details_pb2 import RetryInfo

RETRYABLE_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED})
_DETAILS_KEY = "grpc-status-details-bin"


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 4  # 1: never retry
    initial_backoff_s: float = 0.25
    max_backoff_s: float = 4.0
    max_wait_s: float = 30.0
    codes: frozenset[grpc.StatusCode] = field(default=RETRYABLE_CODES)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if not 0 < self.initial_backoff_s <= self.max_backoff_s:
            raise ValueError("need 0 < initial_backoff_s <= max_backoff_s")


NO_RETRY = RetryPolicy(max_attempts=1)


def server_retry_delay(error: grpc.RpcError) -> float | None:
    """The wait the server asked for in `google.rpc.RetryInfo`, or None when it named none."""
    trailing = error.trailing_metadata() if isinstance(error, grpc.Call | grpc.aio.AioRpcError) else None
    for key, value in trailing or ():
        if key != _DETAILS_KEY or not isinstance(value, bytes):
            continue
        status = status_pb2.Status.FromString(value)
        for detail in status.details:
            info = RetryInfo()
            if detail.Unpack(info):
                return info.retry_delay.ToNanoseconds() / 1e9
    return None


def error_code(error: grpc.RpcError) -> grpc.StatusCode | None:
    return error.code() if isinstance(error, grpc.Call | grpc.aio.AioRpcError) else None


def next_delay(
    policy: RetryPolicy, error: grpc.RpcError, attempt: int, remaining: float | None
) -> float | None:
    """Seconds to wait before attempt `attempt + 1`, or None: give up and raise `error`."""
    if error_code(error) not in policy.codes or attempt >= policy.max_attempts:
        return None
    asked = server_retry_delay(error)
    if asked is not None:
        if asked > policy.max_wait_s:
            return None
        delay = asked
    else:
        backoff = min(policy.max_backoff_s, policy.initial_backoff_s * 2 ** (attempt - 1))
        delay = backoff * random.uniform(0.5, 1.0)  # jitter: clients refused together do not return together
    if remaining is not None and delay >= remaining:
        return None
    return delay


class Deadline:
    """What is left of a call's timeout (None: no deadline) across its attempts."""

    def __init__(self, timeout: float | None) -> None:
        self._end = None if timeout is None else time.monotonic() + timeout

    def remaining(self) -> float | None:
        return None if self._end is None else max(0.0, self._end - time.monotonic())
