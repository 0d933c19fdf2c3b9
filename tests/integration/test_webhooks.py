"""Webhooks through a real gateway: a tenant registers its endpoint with WebhookService, a real Generate
is held (or blocked and appealed), a reviewer decides through ReviewService, and the delivery worker
POSTs the signed events to a real HTTP receiver. Without the text, in order."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Iterator

import grpc
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.api.v1 import review_pb2 as rv_pb
from gateway.api.v1 import webhooks_pb2 as wh_pb
from gateway.api.v1 import webhooks_pb2_grpc as wh_grpc
from gateway.client import GatewayClient, action_name
from gateway.storage.engine import make_engine
from gateway.storage.models import AuditEvent, GenerationOutput
from gateway.webhooks.delivery import RetryPolicy, WebhookWorker
from moderation.types import Action
from tests.db.test_webhooks import PAYLOAD_KEYS, doc_verifier
from tests.integration.conftest import FLAG_SEED, FLAG_TOKENS, PROMPT
from tests.integration.gateway_harness import ServerThread
from tests.integration.keys import make_keys
from tests.integration.test_review_flow import claim, decide, md
from tests.support.webhook_receiver import Receiver

TENANT = "hooked"
ALL_EVENTS = ["output.held", "output.blocked", "review.decided", "appeal.opened", "appeal.decided"]


@pytest.fixture(scope="module")
def server(make_gateway: Callable[..., ServerThread]) -> ServerThread:
    return make_gateway(Action.HOLD, insecure_no_auth=False)


@pytest.fixture(scope="module")
def keys(db_url: str) -> dict[str, str]:
    return make_keys(
        db_url,
        {
            "client": {"tenant": TENANT, "scopes": ["generate"]},
            "blocked": {"tenant": TENANT, "scopes": ["generate"], "policy": "test-block"},
            "other": {"tenant": "hooked-other", "scopes": ["generate"]},
            "reviewer-only": {"tenant": TENANT, "scopes": ["review"], "reviewer": "wanda"},
        },
        reviewers=["wanda"],
    )


@pytest.fixture(scope="module")
def channel(server: ServerThread) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(server.address) as ch:
        yield ch


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


def stub(channel: grpc.Channel) -> wh_grpc.WebhookServiceStub:
    return wh_grpc.WebhookServiceStub(channel)


def code_of(call: Callable[[], object]) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        call()
    err = info.value
    assert isinstance(err, grpc.Call)
    return err.code(), err.details() or ""


def deliver_until(server: ServerThread, done: Callable[[], bool]) -> None:
    worker = WebhookWorker(server.components.sessions, RetryPolicy(timeout_s=2.0, retry_base_s=0.05))

    async def run() -> None:
        deadline = time.monotonic() + 20
        try:
            while not done():
                assert time.monotonic() < deadline, "events were not delivered"
                await worker.deliver_due()
                await asyncio.sleep(0.05)
        finally:
            await worker.aclose()

    asyncio.run(run())


def test_a_tenant_manages_its_own_endpoints(
    channel: grpc.Channel, keys: dict[str, str], db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    added = stub(channel).AddWebhook(
        wh_pb.AddWebhookRequest(url="https://hooks.example/a", events=["output.held", "output.held"]),
        metadata=md(keys["client"]),
    )
    assert added.secret.startswith("whsec_") and list(added.webhook.events) == ["output.held"]
    listed = stub(channel).ListWebhooks(wh_pb.ListWebhooksRequest(), metadata=md(keys["client"]))
    assert added.webhook.id in [w.id for w in listed.webhooks]
    assert added.secret not in str(listed)
    # Shown once: never logged, never in the audit log (which tenants and operators read).
    assert added.secret not in caplog.text
    engine = make_engine(db_url)
    with Session(engine) as s:
        payloads = [e.payload for e in s.scalars(select(AuditEvent).where(AuditEvent.tenant == TENANT))]
    engine.dispose()
    assert added.webhook.id in str(payloads) and added.secret not in str(payloads)  # audited, without it
    # Another tenant neither sees nor removes it.
    theirs = stub(channel).ListWebhooks(wh_pb.ListWebhooksRequest(), metadata=md(keys["other"]))
    assert added.webhook.id not in [w.id for w in theirs.webhooks]
    code, _ = code_of(
        lambda: stub(channel).RemoveWebhook(
            wh_pb.RemoveWebhookRequest(id=added.webhook.id), metadata=md(keys["other"])
        )
    )
    assert code == grpc.StatusCode.NOT_FOUND
    stub(channel).RemoveWebhook(wh_pb.RemoveWebhookRequest(id=added.webhook.id), metadata=md(keys["client"]))
    left = stub(channel).ListWebhooks(wh_pb.ListWebhooksRequest(), metadata=md(keys["client"]))
    assert added.webhook.id not in [w.id for w in left.webhooks]


@pytest.mark.parametrize(
    ("request_", "reason"),
    [
        (wh_pb.AddWebhookRequest(url="gopher://x/", events=["output.held"]), "http:// or https://"),
        (wh_pb.AddWebhookRequest(url="https://x/", events=[]), "at least one"),
        (wh_pb.AddWebhookRequest(url="https://x/", events=["output.released"]), "unknown event type"),
        (wh_pb.AddWebhookRequest(url="https://x/", events=["output.held"] * 50), "at most"),
    ],
)
def test_bad_registrations_are_invalid_argument(
    channel: grpc.Channel, keys: dict[str, str], request_: wh_pb.AddWebhookRequest, reason: str
) -> None:
    code, details = code_of(lambda: stub(channel).AddWebhook(request_, metadata=md(keys["client"])))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and reason in details


def test_scope_and_key_are_checked(channel: grpc.Channel, keys: dict[str, str]) -> None:
    request = wh_pb.ListWebhooksRequest()
    assert code_of(lambda: stub(channel).ListWebhooks(request))[0] == grpc.StatusCode.UNAUTHENTICATED
    code, details = code_of(lambda: stub(channel).ListWebhooks(request, metadata=md(keys["reviewer-only"])))
    assert code == grpc.StatusCode.PERMISSION_DENIED and "generate" in details
    code, _ = code_of(
        lambda: stub(channel).RemoveWebhook(
            wh_pb.RemoveWebhookRequest(id="x" * 65), metadata=md(keys["client"])
        )
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT


def test_held_then_approved_and_blocked_then_appealed_are_pushed_signed_in_order_without_text(
    server: ServerThread, channel: grpc.Channel, keys: dict[str, str], receiver: Receiver
) -> None:
    added = stub(channel).AddWebhook(
        wh_pb.AddWebhookRequest(url=receiver.url, events=ALL_EVENTS), metadata=md(keys["client"])
    )
    try:
        with GatewayClient(server.address, api_key=keys["client"]) as client:
            held = client.generate(PROMPT, max_new_tokens=FLAG_TOKENS, seed=FLAG_SEED)
        with GatewayClient(server.address, api_key=keys["blocked"]) as client:
            blocked = client.generate(PROMPT, max_new_tokens=FLAG_TOKENS, seed=FLAG_SEED)
            assert action_name(blocked.outputs[0].moderation.action) == "BLOCKED"
            client.appeal(blocked.outputs[0].ticket, "please look again")
        ticket = held.outputs[0].ticket
        item = claim(channel, keys["reviewer-only"], ticket)
        decide(channel, keys["reviewer-only"], item, rv_pb.REVIEW_DECISION_APPROVE)
        deliver_until(server, lambda: len(receiver.received) >= 4)
    finally:
        stub(channel).RemoveWebhook(
            wh_pb.RemoveWebhookRequest(id=added.webhook.id), metadata=md(keys["client"])
        )

    events = [(e["ticket"], e["type"], e["state"], e["request_id"]) for e in receiver.events()]
    b_ticket = blocked.outputs[0].ticket
    assert [e for e in events if e[0] == ticket] == [
        (ticket, "output.held", "held", held.request_id),
        (ticket, "review.decided", "approved", held.request_id),
    ]
    assert [e for e in events if e[0] == b_ticket] == [
        (b_ticket, "output.blocked", "blocked", blocked.request_id),
        (b_ticket, "appeal.opened", "held", blocked.request_id),
    ]
    with server.components.sessions() as s:
        texts = list(
            s.scalars(
                select(GenerationOutput.generated_text).where(GenerationOutput.ticket.in_([ticket, b_ticket]))
            )
        )
    verify = doc_verifier()
    for got in receiver.received:
        assert verify(added.secret, got.headers["Modgate-Signature"], got.body)
        assert set(got.event) == PAYLOAD_KEYS and got.event["tenant"] == TENANT
        for text in [*texts, PROMPT, "please look again"]:
            assert text.encode() not in got.raw
        # Every value of the body is accounted for: the ones compared above, and these two.
        assert re.fullmatch(r"[0-9a-f-]{36}", got.event["id"])
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", got.event["created_at"])
