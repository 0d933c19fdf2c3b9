"""The database witnesses every call: recorded before generation, outcome committed before the answer."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import grpc
import pytest
from sqlalchemy.orm import Session

from gateway.audit import events
from gateway.audit.chain import verify
from gateway.client import GatewayClient
from gateway.generation.params import RawParams
from gateway.pipeline.callers import INSECURE_CALLER
from gateway.pipeline.core import StreamStarted
from gateway.storage.engine import make_engine
from gateway.storage.models import (
    OutputStatus,
    RequestStatus,
    ReviewState,
)
from moderation.types import Action
from tests.integration.conftest import FLAG_SEED, FLAG_TOKENS, PROMPT
from tests.integration.gateway_harness import ServerThread
from tests.integration.records import rows_for


@pytest.fixture(scope="module")
def holding(make_gateway: Callable[..., ServerThread]) -> ServerThread:
    return make_gateway(Action.HOLD)


def test_held_call_is_recorded_with_review_item_and_audit_trail(
    holding: ServerThread, db_url: str, flag_word: str
) -> None:
    with GatewayClient(holding.address) as client:
        response = client.generate([PROMPT, "The garden"], max_new_tokens=FLAG_TOKENS, seed=FLAG_SEED)
    req, outputs, audit = rows_for(db_url, response.request_id)
    assert req.status == RequestStatus.COMPLETED and req.prompt_count == 2
    assert req.parameters["seed"] == FLAG_SEED and req.parameters["max_new_tokens"] == FLAG_TOKENS
    held = [o for o in outputs if o.status == OutputStatus.HELD]
    assert len(held) == 1 and held[0].ticket == response.outputs[0].ticket
    assert flag_word in held[0].generated_text and held[0].released_text is None
    assert held[0].review_item is not None and held[0].review_item.state == ReviewState.PENDING
    assert any(r.get("excerpt") for r in held[0].reasons), "reviewers get the excerpt"
    assert held[0].identity_checks == [] and held[0].shadow == []  # stored, empty for this policy
    kinds = [e.event_type for e in audit]
    assert kinds[0] == events.REQUEST_RECEIVED
    assert kinds.count(events.REVIEW_HELD) == 1 and kinds.count(events.MODERATION_DECIDED) == 2
    assert kinds.index(events.MODERATION_DECIDED) < kinds.index(events.REVIEW_HELD)
    received = audit[0].payload
    assert received["model"] == holding.components.generator.model_id and received["seed"] == FLAG_SEED
    for e in audit:
        assert flag_word not in str(e.payload), "audit rows never carry withheld text"
    engine = make_engine(db_url)
    with Session(engine) as s:
        assert verify(session=s).ok
    engine.dispose()


def test_deadline_stops_generation_and_marks_the_request_cancelled(
    gateway: ServerThread, db_url: str
) -> None:
    with grpc.insecure_channel(gateway.address) as channel:
        from gateway.api.v1 import generation_pb2 as gen_pb
        from gateway.api.v1 import generation_pb2_grpc as gen_grpc
        from gateway.client import sampling_parameters

        stub = gen_grpc.GenerationServiceStub(channel)
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as info:
            stub.Generate(
                gen_pb.GenerateRequest(
                    input_string=[PROMPT],
                    parameters=sampling_parameters(max_new_tokens=500, min_new_tokens=500),
                ),
                timeout=0.5,
                metadata=(("x-request-id", "deadline-test-1"),),
            )
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    deadline = time.monotonic() + 10
    while True:
        req, outputs, audit = rows_for(db_url, "deadline-test-1")
        if req.status != RequestStatus.GENERATING or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert req.status == RequestStatus.CANCELLED and outputs == []
    assert audit[-1].event_type == events.REQUEST_CANCELLED
    # The worker stopped early: a following call does not wait for 500 tokens to finish.
    with GatewayClient(gateway.address, timeout=30) as client:
        client.generate(PROMPT, max_new_tokens=2)
    # 500 tokens take about 5.5 s on this model; stopped at the deadline, the whole exchange takes ~1 s.
    assert time.monotonic() - started < 3.5


def test_client_cancelling_a_stream_stops_the_work_and_the_record_says_so(
    gateway: ServerThread, db_url: str
) -> None:
    with GatewayClient(gateway.address, timeout=60) as client:
        stream = client.generate_stream(
            PROMPT, max_new_tokens=500, min_new_tokens=500, request_id="cancel-test-1"
        )
        first = next(stream)
        assert first.WhichOneof("event") == "start"
        next(stream)  # some text flowed
        started = time.monotonic()
        stream.cancel()
        deadline = time.monotonic() + 10
        while True:
            req, outputs, audit = rows_for(db_url, "cancel-test-1")
            if req.status != RequestStatus.GENERATING or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert req.status == RequestStatus.CANCELLED
        (partial,) = outputs  # the text sent before the cancellation is on record
        assert partial.finish_reason == "cancelled" and partial.released_text
        assert audit[-1].event_type == events.REQUEST_CANCELLED
        client.generate(PROMPT, max_new_tokens=2)  # the worker is free again at once
        # 500 tokens take ~5.5 s on this model; stopped at the cancellation the whole exchange is quick.
        assert time.monotonic() - started < 3.5


def test_a_stream_closed_by_its_consumer_is_recorded_as_cancelled(gateway: ServerThread, db_url: str) -> None:
    """gRPC closes the servicer's stream when the client goes away while it waits at a `yield`: the
    pipeline's stream then gets GeneratorExit, not CancelledError. That is a cancellation too (it was
    recorded as a failure, depending on where the cancellation found the stream)."""
    assert gateway.server is not None
    pipeline = gateway.server.pipeline
    params = pipeline.prepare(
        [PROMPT], RawParams(max_new_tokens=300, min_new_tokens=300, seed=4), field="input_string", stream=True
    )

    async def consume_then_close() -> None:
        stop = threading.Event()
        stream = pipeline.stream(
            INSECURE_CALLER, "closed-by-consumer", PROMPT, params, cancel=stop, should_stop=stop.is_set
        )
        assert isinstance(await anext(stream), StreamStarted)
        assert isinstance(await anext(stream), str)  # a released chunk: the stream waits at its yield
        await stream.aclose()

    gateway.run(consume_then_close())
    req, outputs, audit = rows_for(db_url, "closed-by-consumer")
    assert (req.status, req.error) == (RequestStatus.CANCELLED, "cancelled")
    assert audit[-1].event_type == events.REQUEST_CANCELLED
    (partial,) = outputs
    assert partial.finish_reason == "cancelled" and partial.streamed_text


def test_shadow_policy_is_recorded_but_never_acts(
    make_gateway: Callable[..., ServerThread], db_url: str, flag_word: str
) -> None:
    server = make_gateway(Action.MASK, shadow=("test-block",))
    with GatewayClient(server.address) as client:
        response = client.generate(PROMPT, max_new_tokens=FLAG_TOKENS, seed=FLAG_SEED, request_id="shadow-1")
    out = response.outputs[0]
    assert out.moderation.policy == "test-mask"
    assert out.text and flag_word[0] + "*" in out.text, "the live policy masked; the shadow did not block"
    _, outputs, audit = rows_for(db_url, "shadow-1")
    (stored,) = outputs
    assert stored.status == OutputStatus.RELEASED
    assert [(s["policy_name"], s["action"]) for s in stored.shadow] == [("test-block", "block")]
    decided = [e for e in audit if e.event_type == events.MODERATION_DECIDED]
    assert decided[0].payload["shadow"][0]["action"] == "block"
