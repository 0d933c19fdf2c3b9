"""Both clients against a real gRPC server that refuses the first calls: they come back after the wait the
server named in RetryInfo, retry streams only before the first message, and give up when told to."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest
from google.protobuf.any_pb2 import Any as AnyProto
from google.protobuf.duration_pb2 import Duration
from google.rpc import status_pb2
from google.rpc.error_details_pb2 import RetryInfo
from grpc_status import rpc_status

from gateway.api.v1 import generation_pb2 as gen_pb
from gateway.api.v1 import generation_pb2_grpc as gen_grpc
from gateway.api.v1 import policy_pb2 as pol_pb
from gateway.api.v1 import policy_pb2_grpc as pol_grpc
from gateway.client import NO_RETRY, AsyncGatewayClient, GatewayClient, RetryPolicy

WAIT_S = 0.3


def refusal(code: grpc.StatusCode, retry_after_s: float | None) -> grpc.Status:
    details = []
    if retry_after_s is not None:
        delay = Duration()
        delay.FromNanoseconds(int(retry_after_s * 1e9))
        detail = AnyProto()
        detail.Pack(RetryInfo(retry_delay=delay))
        details.append(detail)
    return rpc_status.to_status(
        status_pb2.Status(code=code.value[0], message="come back later", details=details)
    )


class Flaky(gen_grpc.GenerationServiceServicer):
    """Refuses the first `failures` calls of each method, then answers."""

    def __init__(self) -> None:
        self.failures = 0
        self.code = grpc.StatusCode.RESOURCE_EXHAUSTED
        self.retry_after_s: float | None = WAIT_S
        self.calls: list[tuple[str, float, str]] = []

    def _maybe_refuse(self, name: str, context: grpc.ServicerContext) -> None:
        key = dict(context.invocation_metadata()).get("authorization", "")
        self.calls.append((name, time.monotonic(), key))
        if sum(1 for c in self.calls if c[0] == name) <= self.failures:
            context.abort_with_status(refusal(self.code, self.retry_after_s))

    def Generate(self, request: Any, context: grpc.ServicerContext) -> gen_pb.GenerateResponse:
        self._maybe_refuse("Generate", context)
        return gen_pb.GenerateResponse(request_id="r1", model="flaky")

    def GenerateStream(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        self._maybe_refuse("GenerateStream", context)
        yield gen_pb.GenerateStreamResponse(start=gen_pb.StreamStart(request_id="s1"))
        yield gen_pb.GenerateStreamResponse(text="hello")


@pytest.fixture
def flaky() -> Iterator[tuple[Flaky, str]]:
    servicer = Flaky()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    gen_grpc.add_GenerationServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield servicer, f"127.0.0.1:{port}"
    server.stop(0)


def gaps(servicer: Flaky) -> list[float]:
    times = [t for _, t, _ in servicer.calls]
    return [b - a for a, b in itertools.pairwise(times)]


def test_unary_calls_come_back_after_the_servers_wait(flaky: tuple[Flaky, str]) -> None:
    servicer, address = flaky
    servicer.failures = 2
    with GatewayClient(address, api_key="mg_key") as client:
        assert client.generate("hi").model == "flaky"
    assert len(servicer.calls) == 3 and all(key == "Bearer mg_key" for _, _, key in servicer.calls)
    assert all(gap >= WAIT_S * 0.9 for gap in gaps(servicer))


def test_giving_up_raises_the_servers_error(flaky: tuple[Flaky, str]) -> None:
    servicer, address = flaky
    servicer.failures = 5
    with (
        GatewayClient(address, retry=RetryPolicy(max_attempts=3)) as client,
        pytest.raises(grpc.RpcError) as info,
    ):
        client.generate("hi")
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and len(servicer.calls) == 3
    servicer.calls.clear()
    with GatewayClient(address, retry=NO_RETRY) as client, pytest.raises(grpc.RpcError):
        client.generate("hi")
    assert len(servicer.calls) == 1
    servicer.calls.clear()
    servicer.retry_after_s = 120.0  # longer than max_wait_s: the caller decides, at once
    started = time.monotonic()
    with GatewayClient(address) as client, pytest.raises(grpc.RpcError):
        client.generate("hi")
    assert len(servicer.calls) == 1 and time.monotonic() - started < 5


def test_a_deadline_bounds_the_retries(flaky: tuple[Flaky, str]) -> None:
    servicer, address = flaky
    servicer.failures = 10
    servicer.code, servicer.retry_after_s = grpc.StatusCode.UNAVAILABLE, None  # backoff, no RetryInfo
    started = time.monotonic()
    with GatewayClient(address, timeout=1.0) as client, pytest.raises(grpc.RpcError) as info:
        client.generate("hi")
    assert info.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    assert time.monotonic() - started < 2.0 and len(servicer.calls) >= 2


def test_streams_retry_before_their_first_message(flaky: tuple[Flaky, str]) -> None:
    servicer, address = flaky
    servicer.failures = 1
    with GatewayClient(address) as client:
        messages = list(client.generate_stream("hi"))
    assert [m.WhichOneof("event") for m in messages] == ["start", "text"]
    assert len(servicer.calls) == 2


async def test_the_asyncio_client_retries_alike(flaky: tuple[Flaky, str]) -> None:
    servicer, address = flaky
    servicer.failures = 1
    async with AsyncGatewayClient(address, api_key="mg_key") as client:
        assert (await client.generate("hi")).model == "flaky"
        messages = [m async for m in client.generate_stream("hi")]
    assert [m.WhichOneof("event") for m in messages] == ["start", "text"]
    assert [name for name, _, _ in servicer.calls] == [
        "Generate",
        "Generate",
        "GenerateStream",
        "GenerateStream",
    ]
    assert all(gap >= WAIT_S * 0.9 for gap in gaps(servicer)[:1])


class FlakyPolicies(pol_grpc.PolicyServiceServicer):
    """Refuses every other call with RetryInfo: another service's call waits and retries as Generate's."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def ListPolicies(self, request: Any, context: grpc.ServicerContext) -> pol_pb.ListPoliciesResponse:
        self.calls.append(time.monotonic())
        if len(self.calls) % 2:
            context.abort_with_status(refusal(grpc.StatusCode.UNAVAILABLE, WAIT_S))
        return pol_pb.ListPoliciesResponse(revision=7)


async def test_a_policy_call_retries_like_generate() -> None:
    servicer = FlakyPolicies()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    pol_grpc.add_PolicyServiceServicer_to_server(servicer, server)
    address = f"127.0.0.1:{server.add_insecure_port('127.0.0.1:0')}"
    server.start()
    try:
        with GatewayClient(address) as client:
            assert client.list_policies().revision == 7
        async with AsyncGatewayClient(address) as aclient:
            assert (await aclient.list_policies()).revision == 7
    finally:
        server.stop(0)
    assert len(servicer.calls) == 4
    assert all(b - a >= WAIT_S * 0.9 for a, b in (servicer.calls[0:2], servicer.calls[2:4]))
