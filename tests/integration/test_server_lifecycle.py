"""Health checking, reflection, and graceful shutdown with a call in flight."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import grpc
import pytest
from google.protobuf import descriptor_pool, message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from gateway.client import GatewayClient
from gateway.server import GENERATION_SERVICE
from moderation.types import Action
from tests.integration.conftest import PROMPT
from tests.integration.gateway_harness import ServerThread


def test_health_check_reports_serving(gateway: ServerThread) -> None:
    with grpc.insecure_channel(gateway.address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for service in ("", GENERATION_SERVICE):
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.RpcError) as info:
            stub.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=5)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_health_watch_reports_serving_then_not_serving_when_the_server_stops(
    make_gateway: Callable[..., ServerThread],
) -> None:
    """Watch is the health method that streams with `context.write()`: through the interceptors it failed
    with INTERNAL at once, so a watcher never saw a status (neither SERVING nor the drain's NOT_SERVING)."""
    server = make_gateway(Action.MASK)
    with grpc.insecure_channel(server.address) as channel:
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(), timeout=30)
        statuses = iter(watch)
        assert next(statuses).status == health_pb2.HealthCheckResponse.SERVING
        stopper = threading.Thread(target=server.stop, kwargs={"grace": 5})
        stopper.start()
        assert next(statuses).status == health_pb2.HealthCheckResponse.NOT_SERVING
        watch.cancel()  # the stream is a call in flight: left open, it would hold the stop for its grace
        stopper.join(30)
        assert not stopper.is_alive()


def test_reflection_lets_a_generic_client_call_generate(gateway: ServerThread) -> None:
    """What grpcurl does: discover the service by reflection, build messages dynamically, call."""
    with grpc.insecure_channel(gateway.address) as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        services = database.get_services()
        assert GENERATION_SERVICE in services
        assert "grpc.health.v1.Health" in services
        pool = descriptor_pool.DescriptorPool(database)
        service = pool.FindServiceByName(GENERATION_SERVICE)
        method = service.methods_by_name["Generate"]
        request_cls = message_factory.GetMessageClass(method.input_type)
        response_cls = message_factory.GetMessageClass(method.output_type)
        request = request_cls()
        request.input_string.append(PROMPT)
        request.parameters.max_new_tokens = 4
        call = channel.unary_unary(
            f"/{GENERATION_SERVICE}/Generate",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=response_cls.FromString,
        )
        response = call(request, timeout=30)
        assert len(response.outputs) == 1 and response.outputs[0].generated_tokens > 0


def test_shutdown_lets_the_call_in_flight_finish_and_refuses_new_ones(
    make_gateway: Callable[..., ServerThread],
) -> None:
    server = make_gateway(Action.MASK)
    results: dict[str, object] = {}

    def long_call() -> None:
        with GatewayClient(server.address, timeout=60) as client:
            try:
                results["response"] = client.generate(PROMPT, max_new_tokens=400, min_new_tokens=400, seed=1)
            except grpc.RpcError as exc:  # pragma: no cover - reported by the assertion below
                results["error"] = exc

    caller = threading.Thread(target=long_call)
    caller.start()
    time.sleep(0.7)  # the call is generating now (400 tokens take several seconds on the demo model)
    stopper = threading.Thread(target=server.stop, kwargs={"grace": 30})
    stopper.start()
    time.sleep(0.3)
    with GatewayClient(server.address, timeout=5) as client, pytest.raises(grpc.RpcError) as info:
        client.generate(PROMPT, max_new_tokens=2)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    caller.join(60)
    stopper.join(60)
    assert "error" not in results, results.get("error")
    response = results["response"]
    assert response.outputs[0].generated_tokens == 400  # type: ignore[attr-defined]
