"""The synchronous client for every gateway service: generation and results, review, audit.

It imports neither torch nor transformers, so that a client starts fast. Failed calls are retried as
`gateway.client.retry` says; `timeout` bounds a call with its retries.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Generic, TypeVar, Unpack

import grpc

from gateway.api.v1 import audit_pb2 as au_pb
from gateway.api.v1 import generation_pb2 as gen_pb
from gateway.api.v1 import review_pb2 as rv_pb
from gateway.client import requests as build
from gateway.client.core import CLIENT_TIMEOUT, ClientCore, StreamCore
from gateway.client.params import Sampling
from gateway.client.requests import AuditFilters
from gateway.client.retry import Deadline, RetryPolicy, next_delay

T = TypeVar("T")


class Stream(StreamCore, Generic[T]):
    """A server stream: iterate for the messages, `cancel()` to stop the call (the server stops its work).

    A retryable failure before the first message starts the call again; later ones are raised.
    """

    _started = False

    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        if self._started:
            return next(self._call)
        attempt = 1
        while True:
            if self._cancelled:
                raise StopIteration
            self._call = self._start(self._deadline.remaining())
            try:
                first = next(self._call)
            except grpc.RpcError as exc:
                delay = next_delay(self._policy, exc, attempt, self._deadline.remaining())
                if delay is None:
                    raise
                time.sleep(delay)
                attempt += 1
                continue
            self._started = True
            return first


class GatewayClient(ClientCore):
    """One channel to a gateway; a context manager. `api_key` is sent with every call; `retry=NO_RETRY`
    turns retries off."""

    def __init__(
        self,
        address: str,
        *,
        api_key: str | None = None,
        timeout: float | None = 120.0,
        credentials: grpc.ChannelCredentials | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        channel = grpc.secure_channel(address, credentials) if credentials else grpc.insecure_channel(address)
        super().__init__(channel, api_key=api_key, timeout=timeout, retry=retry)

    def __enter__(self) -> GatewayClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def _unary(self, method: Any, request: Any, *, request_id: str | None = None, timeout: Any) -> Any:
        deadline = Deadline(self._call_timeout(timeout))
        metadata = self._metadata(request_id)
        attempt = 1
        while True:
            try:
                return method(request, timeout=deadline.remaining(), metadata=metadata)
            except grpc.RpcError as exc:
                delay = next_delay(self._retry, exc, attempt, deadline.remaining())
                if delay is None:
                    raise
                time.sleep(delay)
                attempt += 1

    def _stream(
        self, method: Any, request: Any, *, request_id: str | None = None, timeout: Any
    ) -> Stream[Any]:
        metadata = self._metadata(request_id)
        start = lambda left: method(request, timeout=left, metadata=metadata)  # noqa: E731
        return Stream(start, self._retry, self._call_timeout(timeout))

    # GenerationService

    def generate(
        self,
        prompts: str | Sequence[str],
        *,
        request_id: str | None = None,
        timeout: float | None = CLIENT_TIMEOUT,
        **params: Unpack[Sampling],
    ) -> gen_pb.GenerateResponse:
        """Moderated outputs for one prompt or several; `request_id` ties the call to the server's logs
        and audit trail."""
        request = build.generate(prompts, dict(params))
        return self._unary(self._generation.Generate, request, request_id=request_id, timeout=timeout)

    def generate_stream(
        self,
        prompt: str,
        *,
        request_id: str | None = None,
        timeout: float | None = CLIENT_TIMEOUT,
        **params: Unpack[Sampling],
    ) -> Stream[gen_pb.GenerateStreamResponse]:
        """`start`, the released text in pieces, then `final` with the outcome of the whole text."""
        request = build.generate_stream(prompt, dict(params))
        return self._stream(self._generation.GenerateStream, request, request_id=request_id, timeout=timeout)

    def get_result(self, ticket: str, *, timeout: float | None = CLIENT_TIMEOUT) -> gen_pb.Result:
        """A held (or blocked) output's state; the text once a reviewer approved or edited it."""
        request = gen_pb.GetResultRequest(ticket=ticket)
        return self._unary(self._generation.GetResult, request, timeout=timeout)

    def watch_result(self, ticket: str, *, timeout: float | None = None) -> Stream[gen_pb.Result]:
        """The ticket's state now, then each change until it is decided (no deadline unless given: the
        server bounds a watch's lifetime; watch again when it ends undecided)."""
        request = gen_pb.GetResultRequest(ticket=ticket)
        return self._stream(self._generation.WatchResult, request, timeout=timeout)

    def appeal(self, ticket: str, reason: str, *, timeout: float | None = CLIENT_TIMEOUT) -> gen_pb.Result:
        """Puts a blocked output in the review queue."""
        request = gen_pb.AppealRequest(ticket=ticket, reason=reason)
        return self._unary(self._generation.Appeal, request, timeout=timeout)

    # ReviewService (a key with the `review` scope, bound to a reviewer account)

    def list_items(
        self, *, states: Iterable[str | int] = (), limit: int = 0, timeout: float | None = CLIENT_TIMEOUT
    ) -> list[rv_pb.ReviewItem]:
        request = rv_pb.ListItemsRequest(states=build.review_states(states), limit=limit)  # type: ignore[arg-type]
        return list(self._unary(self._review.ListItems, request, timeout=timeout).items)

    def claim_next(
        self, *, lease_seconds: int = 0, timeout: float | None = CLIENT_TIMEOUT
    ) -> rv_pb.ReviewItem | None:
        """The next item, leased to this reviewer; None when the queue is empty."""
        reply = self._unary(
            self._review.ClaimNext, rv_pb.ClaimNextRequest(lease_seconds=lease_seconds), timeout=timeout
        )
        return reply.item if reply.HasField("item") else None

    def renew_lease(
        self, item_id: str, *, lease_seconds: int = 0, timeout: float | None = CLIENT_TIMEOUT
    ) -> rv_pb.ReviewItem:
        request = rv_pb.RenewLeaseRequest(item_id=item_id, lease_seconds=lease_seconds)
        return self._unary(self._review.RenewLease, request, timeout=timeout)

    def decide(
        self,
        item: rv_pb.ReviewItem,
        decision: str | int,
        *,
        reason: str = "",
        edited_text: str | None = None,
        timeout: float | None = CLIENT_TIMEOUT,
    ) -> rv_pb.ReviewItem:
        """ "approve", "edit" (with `edited_text`) or "reject" the claimed `item` at its version."""
        request = build.decide(item.id, item.version, decision, reason=reason, edited_text=edited_text)
        return self._unary(self._review.Decide, request, timeout=timeout)

    # AuditService

    def audit_query(
        self,
        *,
        after_id: int = 0,
        limit: int = 0,
        timeout: float | None = CLIENT_TIMEOUT,
        **filters: Unpack[AuditFilters],
    ) -> list[au_pb.AuditEvent]:
        """One page of events (`limit`, default 100), oldest first; the next page: `after_id=` the last
        id of this one. A key with the `audit` scope sees its own tenant's events only."""
        request = build.audit_query(after_id=after_id, limit=limit, filters=filters)
        return list(self._stream(self._audit.Query, request, timeout=timeout))

    def audit_verify(self, *, timeout: float | None = CLIENT_TIMEOUT) -> au_pb.VerifyResponse:
        return self._unary(self._audit.Verify, au_pb.VerifyRequest(), timeout=timeout)
