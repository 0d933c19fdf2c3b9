"""The synchronous client for every gateway service: generation and results, review, QA labels, audit,
webhooks, and the operators' policies and word lists.

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

    # QaService (a key with the `review` scope, bound to a reviewer account: who the label is by)

    def list_qa_samples(
        self, *, limit: int = 0, timeout: float | None = CLIENT_TIMEOUT
    ) -> list[qa_pb.QaSample]:
        """Unlabelled samples of released outputs, oldest first (`limit` 1..500, default 100), each with
        the text its client received: a label judges what was sent, not what was withheld."""
        request = qa_pb.ListQaSamplesRequest(limit=limit)
        return list(self._unary(self._qa.ListQaSamples, request, timeout=timeout).samples)

    def label_qa_sample(
        self,
        sample_id: str,
        label: str | int,
        *,
        categories: Iterable[str] = (),
        timeout: float | None = CLIENT_TIMEOUT,
    ) -> qa_pb.QaSample:
        """ "harmful" with one or more of the sample's `label_choices`, or "fine" with none. Labels are
        final (a second is FAILED_PRECONDITION): they feed the policy report's miss rate."""
        request = build.label_qa_sample(sample_id, label, categories)
        return self._unary(self._qa.LabelQaSample, request, timeout=timeout)

    # WebhookService (a key with the `generate` scope: its tenant's endpoints only)

    def add_webhook(
        self, url: str, events: Iterable[str], *, timeout: float | None = CLIENT_TIMEOUT
    ) -> wh_pb.AddWebhookResponse:
        """Registers an endpoint for `events` ("output.held", "review.decided", ...). Keep the reply's
        `secret` (it verifies each delivery's signature): it is never shown again."""
        request = build.add_webhook(url, events)
        return self._unary(self._webhooks.AddWebhook, request, timeout=timeout)

    def list_webhooks(self, *, timeout: float | None = CLIENT_TIMEOUT) -> list[wh_pb.Webhook]:
        """The tenant's endpoints, oldest first, without their secrets."""
        request = wh_pb.ListWebhooksRequest()
        return list(self._unary(self._webhooks.ListWebhooks, request, timeout=timeout).webhooks)

    def remove_webhook(self, webhook_id: str, *, timeout: float | None = CLIENT_TIMEOUT) -> None:
        """Removes an endpoint and drops its undelivered events; another tenant's is NOT_FOUND."""
        request = wh_pb.RemoveWebhookRequest(id=webhook_id)
        self._unary(self._webhooks.RemoveWebhook, request, timeout=timeout)

    # PolicyService (a key with the `policy` scope: operators; no other scope implies it)

    def list_policies(self, *, timeout: float | None = CLIENT_TIMEOUT) -> pol_pb.ListPoliciesResponse:
        """The version served now of every stored policy, with the revision they come from."""
        request = pol_pb.ListPoliciesRequest()
        return self._unary(self._policy.ListPolicies, request, timeout=timeout)

    def list_policy_versions(
        self, *, name: str = "", timeout: float | None = CLIENT_TIMEOUT
    ) -> list[pol_pb.PolicyVersion]:
        """Every stored version (of policy `name` when given), oldest first: the history to diff."""
        request = pol_pb.ListPolicyVersionsRequest(name=name)
        return list(self._unary(self._policy.ListPolicyVersions, request, timeout=timeout).versions)

    def get_policy_version(
        self, version: int, *, timeout: float | None = CLIENT_TIMEOUT
    ) -> pol_pb.PolicyVersion:
        """One stored version, served or not, with its table as a policy file (what `set_policy` takes)."""
        request = pol_pb.GetPolicyVersionRequest(version=version)
        return self._unary(self._policy.GetPolicyVersion, request, timeout=timeout)

    def set_policy(
        self, name: str, policy_toml: str, *, timeout: float | None = CLIENT_TIMEOUT
    ) -> pol_pb.PolicyVersion:
        """Stores a new version of `name` from the keys of its `[moderation.policies.NAME]` table (TOML),
        checked as the config file would be. Not served until activated, so it can be diffed first."""
        request = pol_pb.SetPolicyRequest(name=name, policy_toml=policy_toml)
        return self._unary(self._policy.SetPolicy, request, timeout=timeout)

    def diff_policy_versions(
        self, from_version: int, to_version: int, *, timeout: float | None = CLIENT_TIMEOUT
    ) -> str:
        """A unified diff of the two versions as policy files; empty when they are equal."""
        request = pol_pb.DiffPolicyVersionsRequest(from_version=from_version, to_version=to_version)
        return self._unary(self._policy.DiffPolicyVersions, request, timeout=timeout).diff

    def activate_policy_version(
        self, version: int, *, timeout: float | None = CLIENT_TIMEOUT
    ) -> pol_pb.ActivatePolicyVersionResponse:
        """Serves `version` for its policy from the returned `revision` on (every replica within
        `policy_refresh_s`). FAILED_PRECONDITION when it is served already."""
        request = pol_pb.ActivatePolicyVersionRequest(version=version)
        return self._unary(self._policy.ActivatePolicyVersion, request, timeout=timeout)

    # WordListService (the `policy` scope too). A list is named by `name` and `tenant`, its owner:
    # empty for a global list.

    def create_word_list(
        self,
        name: str,
        *,
        tenant: str = "",
        words: Iterable[str] = (),
        allow: Iterable[str] = (),
        timeout: float | None = CLIENT_TIMEOUT,
    ) -> wl_pb.WordList:
        """A new list at version 1 with block `words` and `allow` entries; it applies to nothing until
        attached. ALREADY_EXISTS when the owner has a list of that name."""
        request = build.create_word_list(name, tenant=tenant, words=words, allow=allow)
        return self._unary(self._wordlists.CreateWordList, request, timeout=timeout)

    def change_word_list(
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
        """A new version with these entries added and removed, served wherever the list is attached;
        earlier versions stay, so decisions made under them replay exactly."""
        request = build.change_word_list(
            name,
            tenant=tenant,
            add_words=add_words,
            remove_words=remove_words,
            add_allow=add_allow,
            remove_allow=remove_allow,
        )
        return self._unary(self._wordlists.ChangeWordList, request, timeout=timeout)

    def get_word_list(
        self, name: str, *, tenant: str = "", version: int = 0, timeout: float | None = CLIENT_TIMEOUT
    ) -> wl_pb.WordList:
        """The list at `version` (0: the latest) with its entries and where it is attached."""
        request = wl_pb.GetWordListRequest(name=name, tenant=tenant, version=version)
        return self._unary(self._wordlists.GetWordList, request, timeout=timeout)

    def list_word_lists(
        self, *, tenant: str = "", only_global: bool = False, timeout: float | None = CLIENT_TIMEOUT
    ) -> list[wl_pb.WordList]:
        """Every list (only `tenant`'s own, or only the global ones) at its latest version, with entry
        counts but no entries."""
        request = wl_pb.ListWordListsRequest(tenant=tenant, only_global=only_global)
        return list(self._unary(self._wordlists.ListWordLists, request, timeout=timeout).lists)

    def list_word_list_versions(
        self, name: str, *, tenant: str = "", timeout: float | None = CLIENT_TIMEOUT
    ) -> list[wl_pb.WordList]:
        """Every version of one list, oldest first, with counts but no entries."""
        request = wl_pb.ListWordListVersionsRequest(name=name, tenant=tenant)
        return list(self._unary(self._wordlists.ListWordListVersions, request, timeout=timeout).versions)

    def attach_word_list(
        self,
        name: str,
        kind: str | int,
        target: str,
        *,
        tenant: str = "",
        timeout: float | None = CLIENT_TIMEOUT,
    ) -> int:
        """Applies the list to `kind` "policy" (a global list only) or "tenant" (a tenant's list: its
        own tenant only) named `target`; returns the revision it applies from."""
        request = build.attach_word_list(name, kind, target, tenant=tenant)
        return self._unary(self._wordlists.AttachWordList, request, timeout=timeout).revision

    def detach_word_list(
        self,
        name: str,
        kind: str | int,
        target: str,
        *,
        tenant: str = "",
        timeout: float | None = CLIENT_TIMEOUT,
    ) -> int:
        """Stops applying the list there; returns the revision it stops at."""
        request = build.attach_word_list(name, kind, target, tenant=tenant)
        return self._unary(self._wordlists.DetachWordList, request, timeout=timeout).revision
