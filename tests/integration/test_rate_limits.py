"""Per-key rate limits through gRPC: RESOURCE_EXHAUSTED with the retry delay in the status details."""

from __future__ import annotations

from collections.abc import Callable

import grpc
import pytest
from google.rpc.error_details_pb2 import RetryInfo
from grpc_status import rpc_status
from sqlalchemy.orm import Session

from gateway.api.v1 import generation_pb2 as gen_pb
from gateway.api.v1 import generation_pb2_grpc as gen_grpc
from gateway.client import GatewayClient, sampling_parameters
from gateway.pipeline.ratelimit import Limits as RateLimits
from gateway.storage.apikeys import create_key
from gateway.storage.engine import make_engine
from moderation.types import Action
from tests.integration.gateway_harness import ServerThread


@pytest.fixture(scope="module")
def limited(make_gateway: Callable[..., ServerThread]) -> ServerThread:
    # The gateway-wide default (used by keys without their own) is 1000 requests/minute.
    return make_gateway(Action.MASK, insecure_no_auth=False, default_requests_per_minute=1000)


@pytest.fixture(scope="module")
def keys(db_url: str) -> dict[str, str]:
    engine = make_engine(db_url)
    with Session(engine) as s, s.begin():
        made = {
            "two-per-minute": create_key(
                session=s, tenant="rl", name="a", scopes=["generate"], requests_per_minute=2
            )[1],
            "twenty-tokens": create_key(
                session=s, tenant="rl", name="b", scopes=["generate"], tokens_per_minute=20
            )[1],
            "default": create_key(session=s, tenant="rl", name="c", scopes=["generate"])[1],
        }
    engine.dispose()
    return made


def call(server: ServerThread, key: str, tokens: int = 2) -> grpc.Call:
    with grpc.insecure_channel(server.address) as channel:
        stub = gen_grpc.GenerationServiceStub(channel)
        _, c = stub.Generate.with_call(
            gen_pb.GenerateRequest(
                input_string=["The garden"],
                parameters=sampling_parameters(max_new_tokens=tokens, min_new_tokens=tokens),
            ),
            metadata=(("authorization", f"Bearer {key}"),),
        )
        return c


def retry_delay(error: grpc.RpcError) -> float:
    status = rpc_status.from_call(error)
    assert status is not None, "rich status details are sent"
    (detail,) = status.details
    info = RetryInfo()
    assert detail.Unpack(info)
    return info.retry_delay.ToTimedelta().total_seconds()


def test_requests_per_minute(limited: ServerThread, keys: dict[str, str]) -> None:
    call(limited, keys["two-per-minute"])
    call(limited, keys["two-per-minute"])
    with pytest.raises(grpc.RpcError) as info:
        call(limited, keys["two-per-minute"])
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "requests per minute" in info.value.details()
    assert 25 <= retry_delay(info.value) <= 30  # one request comes back every 30 s
    for _ in range(5):  # another key, under the gateway default, is not affected
        call(limited, keys["default"])


def test_tokens_per_minute_counts_generated_tokens(limited: ServerThread, keys: dict[str, str]) -> None:
    with pytest.raises(grpc.RpcError) as info:
        call(limited, keys["twenty-tokens"], tokens=21)
    # Never fits however long the client waits: a bad request, not a retryable refusal.
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "more than the key's quota of 20 tokens per minute" in info.value.details()
    call(limited, keys["twenty-tokens"], tokens=12)
    with pytest.raises(grpc.RpcError) as info:
        call(limited, keys["twenty-tokens"], tokens=12)  # 8 left
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert 0 < retry_delay(info.value) <= 15
    call(limited, keys["twenty-tokens"], tokens=8)


def test_database_store_shares_one_limit_between_replicas(
    make_gateway: Callable[..., ServerThread], db_url: str
) -> None:
    """Two gateways on one database with `rate_limit_store = "database"`: a key allowed 3 requests a
    minute gets 3 in all, not 3 on each (the in-process store would let 6 through)."""
    replicas = [
        make_gateway(Action.MASK, insecure_no_auth=False, rate_limit_store="database") for _ in range(2)
    ]
    engine = make_engine(db_url)
    with Session(engine) as s, s.begin():
        key = create_key(session=s, tenant="rl", name="shared", scopes=["generate"], requests_per_minute=3)[1]
    engine.dispose()
    call(replicas[0], key)
    call(replicas[1], key)
    call(replicas[0], key)
    for replica in replicas:
        with pytest.raises(grpc.RpcError) as info:
            call(replica, key)
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert 15 <= retry_delay(info.value) <= 20  # one request comes back every 20 s


def test_a_failed_refund_never_replaces_the_answer(
    make_gateway: Callable[..., ServerThread], keys: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    """Giving back unused reserved tokens happens after the outcome is recorded; if it fails (the shared
    store's database went away), the caller still gets its answer and the failure is logged."""
    server = make_gateway(Action.MASK, insecure_no_auth=False, default_tokens_per_minute=10_000)
    assert server.server is not None
    pipeline = server.server.pipeline
    real = pipeline._limiter
    refunds: list[int] = []

    class RefundFails:
        def admit(self, key: str, limits: RateLimits, *, tokens: int) -> None:
            real.admit(key, limits, tokens=tokens)

        def refund(self, key: str, limits: RateLimits, *, tokens: int) -> None:
            refunds.append(tokens)
            raise RuntimeError("the database went away")

    pipeline._limiter = RefundFails()
    try:
        with GatewayClient(server.address, api_key=keys["default"], timeout=60) as client:
            full = client.generate("The garden", max_new_tokens=20, seed=8).outputs[0].text
            stop = full[len(full) // 2 : len(full) // 2 + 3]
            with caplog.at_level("WARNING", logger="gateway.pipeline.core"):
                out = client.generate("The garden", max_new_tokens=20, seed=8, stop=[stop]).outputs[0]
    finally:
        pipeline._limiter = real
    assert out.text == full[: full.index(stop)], "the answer arrived despite the failed refund"
    assert refunds and refunds[-1] == 20 - out.generated_tokens > 0
    assert any("could not give back" in r.getMessage() for r in caplog.records)
