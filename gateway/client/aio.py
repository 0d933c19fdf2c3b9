"""The asyncio client: `GatewayClient`'s methods as coroutines, on a `grpc.aio` channel.

Requests and the retry policy are the sync client's (`requests`, `retry`); only the waiting differs.
Create it inside the event loop that uses it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any, Generic, TypeVar, Unpack

import grpc

from gateway.api.v1 import audit_pb2 as au_pb
from gateway.api.v1 import generation_pb2 as gen_pb
from gateway.api.v1 import policy_pb2 as pol_pb
from gateway.api.v1 import qa_pb2 as qa_pb
from gateway.api.v1 import review_pb2 as rv_pb
from gateway.api.v1 import webhooks_pb2 as wh_pb
from gateway.api.v1 import wordlist_pb2 as wl_pb
from gateway.client import requests as build
from gateway.client.core import CLIENT_TIMEOUT, ClientCore, StreamCore
from gateway.client.params import Sampling
from gateway.client.requests import AuditFilters
from gateway.client.retry import Deadline, RetryPolicy, next_delay

T = TypeVar("T")


class AsyncStream(StreamCore, Generic[T]):
    """`async for` the messages; `cancel()` stops the call. Retried only before the first message."""

    _messages: AsyncIterator[T] | None = None

    def __aiter__(self) -> AsyncIterator[T]:
        return self

    async def __anext__(self) -> T:
        if self._messages is not None:
            return await anext(self._messages)
        attempt = 1
        while True:
            if self._cancelled:
                raise StopAsyncIteration
            self._call = self._start(self._deadline.remaining())
            messages: AsyncIterator[T] = self._call.__aiter__()
            try:
                first = await anext(messages)
            except grpc.RpcError as exc:
                delay = next_delay(self._policy, exc, attempt, self._deadline.remaining())
                if delay is None:
                    raise
                await asyncio.sleep(delay)
                attempt += 1
                continue
            self._messages = messages
            return first


class AsyncGatewayClient(ClientCore):
    """`async with AsyncGatewayClient(address, api_key=...) as client: await client.generate(...)`."""

    def __init__(
        self,
        address: str,
        *,
        api_key: str | None = None,
        timeout: float | None = 120.0,
        credentials: grpc.ChannelCredentials | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        channel = (
            grpc.aio.secure_channel(address, credentials)
            if credentials is not None
            else grpc.aio.insecure_channel(address)
        )
        super().__init__(channel, api_key=api_key, timeout=timeout, retry=retry)

    async def __aenter__(self) -> AsyncGatewayClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close()

    async def _unary(self, method: Any, request: Any, *, request_id: str | None = None, timeout: Any) -> Any:
        deadline = Deadline(self._call_timeout(timeout))
        metadata = self._metadata(request_id)
        attempt = 1
        while True:
            try:
                return await method(request, timeout=deadline.remaining(), metadata=metadata)
            except grpc.RpcError as exc:
                delay = next_delay(self._retry, exc, attempt, deadline.remaining())
                if delay is None:
                    raise
                await asyncio.sleep(delay)
                attempt += 1

    def _stream(
        self, method: Any, request: Any, *, request_id: str | None = None, timeout: Any
    ) -> AsyncStream[Any]:
        metadata = self._metadata(request_id)
        start = lambda left: method(request, timeout=left, metadata=metadata)  # noqa: E731
        return AsyncStream(start, self._retry, self._call_timeout(timeout))

    # GenerationService: see GatewayClient for what each call does.

    async def generate(
        self,
        prompts: str | Sequence[str],
        *,
        request_id: str | None = None,
        timeout: float | None = CLIENT_TIMEOUT,
        **params: Unpack[Sampling],
    ) -> gen_pb.GenerateResponse:
        request = build.generate(prompts, dict(params))
        return await self._unary(self._generation.Generate, request, request_id=request_id, timeout=timeout)

    def generate_stream(
        self,
        prompt: str,
        *,
        request_id: str | None = None,
        timeout: float | None = CLIENT_TIMEOUT,
        **params: Unpack[Sampling],
    ) -> AsyncStream[gen_pb.GenerateStreamResponse]:
        request = build.generate_stream(prompt, dict(params))
        return self._stream(self._generation.GenerateStream, request, request_id=request_id, timeout=timeout)

    async def get_result(self, ticket: str, *, timeout: float | None = CLIENT_TIMEOUT) -> gen_pb.Result:
        request = gen_pb.GetResultRequest(ticket=ticket)
        return await self._unary(self._generation.GetResult, request, timeout=timeout)

    def watch_result(self, ticket: str, *, timeout: float | None = None) -> AsyncStream[gen_pb.Result]:
        return self._stream(
            self._generation.WatchResult, gen_pb.GetResultRequest(ticket=ticket), timeout=timeout
        )

    async def appeal(
        self, ticket: str, reason: str, *, timeout: float | None = CLIENT_TIMEOUT
    ) -> gen_pb.Result:
        request = gen_pb.AppealRequest(ticket=ticket, reason=reason)
        return await self._unary(self._generation.Appeal, request, timeout=timeout)

    # ReviewService

    async def list_items(
        self, *, states: Iterable[str | int] = (), limit: int = 0, timeout: float | None = CLIENT_TIMEOUT
    ) -> list[rv_pb.ReviewItem]:
        request = rv_pb.ListItemsRequest(states=build.review_states(states), limit=limit)  # type: ignore[arg-type]
        return list((await self._unary(self._review.ListItems, request, timeout=timeout)).items)

    async def claim_next(
        self, *, lease_seconds: int = 0, timeout: float | None = CLIENT_TIMEOUT
    ) -> rv_pb.ReviewItem | None:
        request = rv_pb.ClaimNextRequest(lease_seconds=lease_seconds)
        reply = await self._unary(self._review.ClaimNext, request, timeout=timeout)
        return reply.item if reply.HasField("item") else None

    async def renew_lease(
        self, item_id: str, *, lease_seconds: int = 0, timeout: float | None = CLIENT_TIMEOUT
    ) -> rv_pb.ReviewItem:
        request = rv_pb.RenewLeaseRequest(item_id=item_id, lease_seconds=lease_seconds)
        return await self._unary(self._review.RenewLease, request, timeout=timeout)

    async def decide(
        self,
        item: rv_pb.ReviewItem,
        decision: str | int,
        *,
        reason: str = "",
        edited_text: str | None = None,
        timeout: float | None = CLIENT_TIMEOUT,
    ) -> rv_pb.ReviewItem:
        request = build.decide(item.id, item.version, decision, reason=reason, edited_text=edited_text)
        return await self._unary(self._review.Decide, request, timeout=timeout)

    # AuditService

    async def audit_query(
        self,
        *,
        after_id: int = 0,
        limit: int = 0,
        timeout: float | None = CLIENT_TIMEOUT,
        **filters: Unpack[AuditFilters],
    ) -> list[au_pb.AuditEvent]:
        request = build.audit_query(after_id=after_id, limit=limit, filters=filters)
        return [event async for event in self._stream(self._audit.Query, request, timeout=timeout)]

    async def audit_verify(self, *, timeout: float | None = CLIENT_TIMEOUT) -> au_pb.VerifyResponse:
        return await self._unary(self._audit.Verify, au_pb.VerifyRequest(), timeout=timeout)

    # QaService

    async def list_qa_samples(
        self, *, limit: int = 0, timeout: float | None = CLIENT_TIMEOUT
    ) -> list[qa_pb.QaSample]:
        request = qa_pb.ListQaSamplesRequest(limit=limit)
        return list((await self._unary(self._qa.ListQaSamples, request, timeout=timeout)).samples)

    async def label_qa_sample(
        self,
        sample_id: str,
        label: str | int,
        *,
        categories: Iterable[str] = (),
        timeout: float | None = CLIENT_TIMEOUT,
    ) -> qa_pb.QaSample:
        request = build.label_qa_sample(sample_id, label, categories)
        return await self._unary(self._qa.LabelQaSample, request, timeout=timeout)

    # WebhookService

    async def add_webhook(
        self, url: str, events: Iterable[str], *, timeout: float | None = CLIENT_TIMEOUT
    ) -> wh_pb.AddWebhookResponse:
        request = build.add_webhook(url, events)
        return await self._unary(self._webhooks.AddWebhook, request, timeout=timeout)

    async def list_webhooks(self, *, timeout: float | None = CLIENT_TIMEOUT) -> list[wh_pb.Webhook]:
        request = wh_pb.ListWebhooksRequest()
        return list((await self._unary(self._webhooks.ListWebhooks, request, timeout=timeout)).webhooks)

    async def remove_webhook(self, webhook_id: str, *, timeout: float | None = CLIENT_TIMEOUT) -> None:
        request = wh_pb.RemoveWebhookRequest(id=webhook_id)
        await self._unary(self._webhooks.RemoveWebhook, request, timeout=timeout)

    # PolicyService

    async def list_policies(self, *, timeout: float | None = CLIENT_TIMEOUT) -> pol_pb.ListPoliciesResponse:
        request = pol_pb.ListPoliciesRequest()
        return await self._unary(self._policy.ListPolicies, request, timeout=timeout)

    async def list_policy_versions(
        self, *, name: str = "", timeout: float | None = CLIENT_TIMEOUT
    ) -> list[pol_pb.PolicyVersion]:
        request = pol_pb.ListPolicyVersionsRequest(name=name)
        return list((await self._unary(self._policy.ListPolicyVersions, request, timeout=timeout)).versions)

    async def get_policy_version(
        self, version: int, *, timeout: float | None = CLIENT_TIMEOUT
    ) -> pol_pb.PolicyVersion:
        request = pol_pb.GetPolicyVersionRequest(version=version)
        return await self._unary(self._policy.GetPolicyVersion, request, timeout=timeout)

    async def set_policy(
        self, name: str, policy_toml: str, *, timeout: float | None = CLIENT_TIMEOUT
    ) -> pol_pb.PolicyVersion:
        request = pol_pb.SetPolicyRequest(name=name, policy_toml=policy_toml)
        return await self._unary(self._policy.SetPolicy, request, timeout=timeout)

    async def diff_policy_versions(
        self, from_version: int, to_version: int, *, timeout: float | None = CLIENT_TIMEOUT
    ) -> str:
        request = pol_pb.DiffPolicyVersionsRequest(from_version=from_version, to_version=to_version)
        return (await self._unary(self._policy.DiffPolicyVersions, request, timeout=timeout)).diff

    async def activate_policy_version(
        self, version: int, *, timeout: float | None = CLIENT_TIMEOUT
    ) -> pol_pb.ActivatePolicyVersionResponse:
        request = pol_pb.ActivatePolicyVersionRequest(version=version)
        return await self._unary(self._policy.ActivatePolicyVersion, request, timeout=timeout)

    # WordListService

    async def create_word_list(
        self,
        name: str,
        *,
        tenant: str = "",
        words: Iterable[str] = (),
        allow: Iterable[str] = (),
        timeout: float | None = CLIENT_TIMEOUT,
    ) -> wl_pb.WordList:
        request = build.create_word_list(name, tenant=tenant, words=words, allow=allow)
        return await self._unary(self._wordlists.CreateWordList, request, timeout=timeout)

    async def change_word_list(
        self,
        name: str,
        *,
        tenant: str = "",
        add_words: Iterable[str] = (),
        remove_words: Iterable[str] = (),
        add_allow: Iterable[str] = (),
        remove_allow: Iterable[str] = (),
        timeout: float | None = CLIENT_TIMEOUT,
    ) -> wl_pb.WordList:
        request = build.change_word_list(
            name,
            tenant=tenant,
            add_words=add_words,
            remove_words=remove_words,
            add_allow=add_allow,
            remove_allow=remove_allow,
        )
        return await self._unary(self._wordlists.ChangeWordList, request, timeout=timeout)

    async def get_word_list(
        self, name: str, *, tenant: str = "", version: int = 0, timeout: float | None = CLIENT_TIMEOUT
    ) -> wl_pb.WordList:
        request = wl_pb.GetWordListRequest(name=name, tenant=tenant, version=version)
        return await self._unary(self._wordlists.GetWordList, request, timeout=timeout)

    async def list_word_lists(
        self, *, tenant: str = "", only_global: bool = False, timeout: float | None = CLIENT_TIMEOUT
    ) -> list[wl_pb.WordList]:
        request = wl_pb.ListWordListsRequest(tenant=tenant, only_global=only_global)
        return list((await self._unary(self._wordlists.ListWordLists, request, timeout=timeout)).lists)

    async def list_word_list_versions(
        self, name: str, *, tenant: str = "", timeout: float | None = CLIENT_TIMEOUT
    ) -> list[wl_pb.WordList]:
        request = wl_pb.ListWordListVersionsRequest(name=name, tenant=tenant)
        reply = await self._unary(self._wordlists.ListWordListVersions, request, timeout=timeout)
        return list(reply.versions)

    async def attach_word_list(
        self,
        name: str,
        kind: str | int,
        target: str,
        *,
        tenant: str = "",
        timeout: float | None = CLIENT_TIMEOUT,
    ) -> int:
        request = build.attach_word_list(name, kind, target, tenant=tenant)
        return (await self._unary(self._wordlists.AttachWordList, request, timeout=timeout)).revision

    async def detach_word_list(
        self,
        name: str,
        kind: str | int,
        target: str,
        *,
        tenant: str = "",
        timeout: float | None = CLIENT_TIMEOUT,
    ) -> int:
        request = build.attach_word_list(name, kind, target, tenant=tenant)
        return (await self._unary(self._wordlists.DetachWordList, request, timeout=timeout)).revision
