"""What the sync and asyncio clients share besides requests and retries: the stubs on one channel, the
call metadata, and the state of a server stream that is retried until its first message."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gateway.api.v1 import audit_pb2_grpc as au_grpc
from gateway.api.v1 import generation_pb2_grpc as gen_grpc
from gateway.api.v1 import policy_pb2_grpc as pol_grpc
from gateway.api.v1 import qa_pb2_grpc as qa_grpc
from gateway.api.v1 import review_pb2_grpc as rv_grpc
from gateway.api.v1 import webhooks_pb2_grpc as wh_grpc
from gateway.api.v1 import wordlist_pb2_grpc as wl_grpc
from gateway.client.retry import Deadline, RetryPolicy

Metadata = tuple[tuple[str, str], ...]
CLIENT_TIMEOUT: Any = object()  # "the client's timeout", as a per-call default


def call_metadata(api_key: str | None, request_id: str | None) -> Metadata:
    """The key as `authorization: Bearer`, and the caller's request id to tie its logs to the server's."""
    pairs = [("authorization", f"Bearer {api_key}")] if api_key else []
    if request_id:
        pairs.append(("x-request-id", request_id))
    return tuple(pairs)


class ClientCore:
    """Every service's stub on `channel` (sync or `grpc.aio`), the key, the timeout, the retry policy."""

    def __init__(
        self, channel: Any, *, api_key: str | None, timeout: float | None, retry: RetryPolicy | None
    ) -> None:
        self._channel = channel
        self._generation = gen_grpc.GenerationServiceStub(channel)
        self._review = rv_grpc.ReviewServiceStub(channel)
        self._audit = au_grpc.AuditServiceStub(channel)
        self._qa = qa_grpc.QaServiceStub(channel)
        self._webhooks = wh_grpc.WebhookServiceStub(channel)
        self._policy = pol_grpc.PolicyServiceStub(channel)
        self._wordlists = wl_grpc.WordListServiceStub(channel)
        self._api_key = api_key
        self._timeout = timeout
        self._retry = retry or RetryPolicy()

    def _call_timeout(self, timeout: Any) -> float | None:
        return self._timeout if timeout is CLIENT_TIMEOUT else timeout

    def _metadata(self, request_id: str | None) -> Metadata:
        return call_metadata(self._api_key, request_id)


class StreamCore:
    """A stream call being (re)started: `start(seconds left)` makes the call."""

    def __init__(
        self, start: Callable[[float | None], Any], policy: RetryPolicy, timeout: float | None
    ) -> None:
        self._start = start
        self._policy = policy
        self._deadline = Deadline(timeout)
        self._call: Any = None
        self._cancelled = False

    def cancel(self) -> None:
        """Stops the call; the server stops generating for it."""
        self._cancelled = True
        if self._call is not None:
            self._call.cancel()
