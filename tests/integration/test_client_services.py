"""The clients cover every service: a held output's ticket is watched, claimed and approved by a reviewer
client, read back, and found in the audit log; a blocked one is appealed. Sync and asyncio alike."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from gateway.api.v1 import generation_pb2 as gen_pb
from gateway.api.v1 import review_pb2 as rv_pb
from gateway.client import AsyncGatewayClient, GatewayClient, action_name
from moderation.types import Action
from tests.integration.conftest import FLAG_SEED, FLAG_TOKENS, PROMPT
from tests.integration.gateway_harness import ServerThread
from tests.integration.keys import make_keys


@pytest.fixture(scope="module")
def server(make_gateway: Callable[..., ServerThread]) -> ServerThread:
    return make_gateway(Action.HOLD, insecure_no_auth=False)


@pytest.fixture(scope="module")
def keys(db_url: str) -> dict[str, str]:
    return make_keys(
        db_url,
        {
            "app": {"tenant": "client-co", "scopes": ["generate"]},
            "blocked": {"tenant": "client-co", "scopes": ["generate"], "policy": "test-block"},
            "cleo": {"tenant": "staff", "scopes": ["review"], "reviewer": "cleo"},
            "ops": {"tenant": "staff", "scopes": ["audit:all"]},
        },
        reviewers=["cleo"],
    )


def claim(reviewer: GatewayClient, ticket: str) -> rv_pb.ReviewItem:
    """Claims until it holds `ticket`'s item (items other tests left are rejected)."""
    for _ in range(50):
        item = reviewer.claim_next(lease_seconds=60)
        assert item is not None, f"ticket {ticket} never came up"
        if item.ticket == ticket:
            return item
        reviewer.decide(item, "reject", reason="not this test's")
    raise AssertionError("queue did not drain")


def test_a_held_output_from_ticket_to_approved_text(server: ServerThread, keys: dict[str, str]) -> None:
    with (
        GatewayClient(server.address, api_key=keys["app"]) as app,
        GatewayClient(server.address, api_key=keys["cleo"]) as reviewer,
        GatewayClient(server.address, api_key=keys["ops"]) as ops,
    ):
        out = app.generate(PROMPT, max_new_tokens=FLAG_TOKENS, seed=FLAG_SEED).outputs[0]
        assert action_name(out.moderation.action) == "HELD" and not out.text
        assert app.get_result(out.ticket).state == gen_pb.RESULT_STATE_PENDING
        watch = app.watch_result(out.ticket, timeout=30)
        assert next(watch).state == gen_pb.RESULT_STATE_PENDING
        assert any(i.ticket == out.ticket for i in reviewer.list_items(states=["pending"], limit=500))
        item = claim(reviewer, out.ticket)
        item = reviewer.renew_lease(item.id, lease_seconds=120)
        decided = reviewer.decide(item, "edit", edited_text="A kinder text.", reason="reworded")
        assert decided.state == rv_pb.REVIEW_STATE_EDITED
        final = next(r for r in watch if r.state != gen_pb.RESULT_STATE_PENDING)
        assert final.state == gen_pb.RESULT_STATE_EDITED and final.text == "A kinder text."
        assert app.get_result(out.ticket).text == "A kinder text."
        events = ops.audit_query(ticket=out.ticket, event_type="review.*", limit=50)
        assert {"review.held", "review.claimed", "review.edited"} <= {e.event_type for e in events}
        assert ops.audit_verify().ok


def test_a_blocked_output_is_appealed(server: ServerThread, keys: dict[str, str]) -> None:
    with GatewayClient(server.address, api_key=keys["blocked"]) as app:
        out = app.generate(PROMPT, max_new_tokens=FLAG_TOKENS, seed=FLAG_SEED).outputs[0]
        assert action_name(out.moderation.action) == "BLOCKED"
        assert app.get_result(out.ticket).state == gen_pb.RESULT_STATE_BLOCKED
        assert app.appeal(out.ticket, "a false positive").state == gen_pb.RESULT_STATE_PENDING


async def test_the_asyncio_client_covers_the_same_services(
    server: ServerThread, keys: dict[str, str]
) -> None:
    async with (
        AsyncGatewayClient(server.address, api_key=keys["app"]) as app,
        AsyncGatewayClient(server.address, api_key=keys["cleo"]) as reviewer,
        AsyncGatewayClient(server.address, api_key=keys["ops"]) as ops,
    ):
        out = (await app.generate(PROMPT, max_new_tokens=FLAG_TOKENS, seed=FLAG_SEED)).outputs[0]
        streamed = [m async for m in app.generate_stream(PROMPT, max_new_tokens=4, seed=3)]
        assert streamed[0].WhichOneof("event") == "start" and streamed[-1].WhichOneof("event") == "final"
        assert (await app.get_result(out.ticket)).state == gen_pb.RESULT_STATE_PENDING
        for _ in range(50):
            item = await reviewer.claim_next(lease_seconds=60)
            assert item is not None
            if item.ticket == out.ticket:
                break
            await reviewer.decide(item, "reject", reason="not this test's")
        await reviewer.decide(item, "approve")
        watched = [r async for r in app.watch_result(out.ticket, timeout=30)]
        assert watched[-1].state == gen_pb.RESULT_STATE_APPROVED and watched[-1].text
        assert await ops.audit_query(ticket=out.ticket, limit=100)
        assert (await ops.audit_verify()).ok
        assert await reviewer.list_items(states=["approved"], limit=10)
