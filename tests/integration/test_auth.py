"""API keys: UNAUTHENTICATED without a valid key, PERMISSION_DENIED outside its scopes, tenant and
policy taken from the key."""

from __future__ import annotations

from collections.abc import Callable

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.client import GatewayClient, action_name
from gateway.storage.engine import make_engine
from gateway.storage.models import GenerationRequest
from moderation.types import Action
from tests.integration.conftest import FLAG_SEED, FLAG_TOKENS, PROMPT
from tests.integration.gateway_harness import ServerThread
from tests.integration.keys import make_keys


@pytest.fixture(scope="module")
def secured(make_gateway: Callable[..., ServerThread]) -> ServerThread:
    return make_gateway(Action.MASK, insecure_no_auth=False)


@pytest.fixture(scope="module")
def keys(db_url: str) -> dict[str, str]:
    return make_keys(
        db_url,
        {
            name: {
                "tenant": f"tenant-{name}",
                "scopes": scopes,
                "policy": policy,
                "revoked": name == "revoked",
            }
            for name, scopes, policy in [
                ("gen", ["generate"], None),
                ("hold", ["generate"], "test-hold"),
                ("audit-only", ["audit"], None),
                ("revoked", ["generate"], None),
                ("unknown-policy", ["generate"], "no-such-policy"),
            ]
        },
    )


def call(server: ServerThread, key: str | None, **params: object) -> object:
    with GatewayClient(server.address, api_key=key) as client:
        return client.generate(PROMPT, **{"max_new_tokens": 3, **params})


@pytest.mark.parametrize(
    ("key", "code", "message"),
    [
        (None, grpc.StatusCode.UNAUTHENTICATED, "missing API key"),
        ("mg_00000000_" + "x" * 43, grpc.StatusCode.UNAUTHENTICATED, "invalid or revoked API key"),
        ("not-a-key", grpc.StatusCode.UNAUTHENTICATED, "invalid or revoked API key"),
        ("revoked", grpc.StatusCode.UNAUTHENTICATED, "invalid or revoked API key"),
        ("audit-only", grpc.StatusCode.PERMISSION_DENIED, "lacks the 'generate' scope"),
    ],
)
def test_refused(
    secured: ServerThread, keys: dict[str, str], key: str | None, code: grpc.StatusCode, message: str
) -> None:
    with pytest.raises(grpc.RpcError) as info:
        call(secured, keys.get(key, key) if key else None)
    assert info.value.code() == code
    assert message in info.value.details()


def test_valid_key_generates_as_its_tenant(secured: ServerThread, keys: dict[str, str], db_url: str) -> None:
    response = call(secured, keys["gen"])
    engine = make_engine(db_url)
    with Session(engine) as s:
        row = s.scalars(
            select(GenerationRequest).where(GenerationRequest.request_id == response.request_id)
        ).one()
        assert row.tenant == "tenant-gen" and row.api_key_id is not None
    engine.dispose()


def test_the_keys_policy_applies(secured: ServerThread, keys: dict[str, str]) -> None:
    masked = call(secured, keys["gen"], max_new_tokens=FLAG_TOKENS, seed=FLAG_SEED).outputs[0]
    held = call(secured, keys["hold"], max_new_tokens=FLAG_TOKENS, seed=FLAG_SEED).outputs[0]
    assert action_name(masked.moderation.action) == "MASKED"
    assert action_name(held.moderation.action) == "HELD" and held.text == ""
    assert held.moderation.policy == "test-hold"


def test_a_key_naming_an_unconfigured_policy_gets_failed_precondition(
    secured: ServerThread, keys: dict[str, str]
) -> None:
    with pytest.raises(grpc.RpcError) as info:
        call(secured, keys["unknown-policy"])
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "no-such-policy" in info.value.details()


def test_health_needs_no_key(secured: ServerThread) -> None:
    with grpc.insecure_channel(secured.address) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
