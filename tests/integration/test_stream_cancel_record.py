"""A stream cancelled after sending chunks records what it had sent, as the request's output: an operator
or reviewer sees the text the client got, not a cancelled request with no text."""

from __future__ import annotations

import time
from collections.abc import Callable

import grpc
import pytest

from gateway.api.v1 import generation_pb2 as gen_pb
from gateway.api.v1 import generation_pb2_grpc as gen_grpc
from gateway.client import sampling_parameters
from gateway.storage.models import RequestStatus
from moderation.types import Action
from tests.integration.gateway_harness import ServerThread
from tests.integration.records import rows_for


@pytest.fixture(scope="module")
def server(make_gateway: Callable[..., ServerThread]) -> ServerThread:
    return make_gateway(Action.MASK)


def test_cancelled_stream_records_the_released_prefix(server: ServerThread, db_url: str) -> None:
    with grpc.insecure_channel(server.address) as channel:
        call = gen_grpc.GenerationServiceStub(channel).GenerateStream(
            gen_pb.GenerateStreamRequest(
                input_string="Once upon a time in a small village",
                parameters=sampling_parameters(max_new_tokens=512, min_new_tokens=512, seed=4),
            ),
            metadata=(("x-request-id", "cancel-after-chunks"),),
            timeout=60,
        )
        received = ""
        for message in call:
            if message.WhichOneof("event") == "text":
                received += message.text
                if len(received.split()) >= 3:
                    break
        call.cancel()
    assert received, "chunks were sent before the cancellation"
    deadline = time.monotonic() + 20
    while True:
        req, outputs, audit = rows_for(db_url, "cancel-after-chunks")
        if req.status not in (RequestStatus.RECEIVED, RequestStatus.GENERATING):
            break
        assert time.monotonic() < deadline, "the request was never marked"
        time.sleep(0.1)
    assert req.status == RequestStatus.CANCELLED
    (output,) = outputs
    assert output.released_text and output.released_text.startswith(received)
    assert output.generated_text.startswith(output.released_text)
    assert output.finish_reason == "cancelled"
    cancelled = [e for e in audit if e.event_type == "request.cancelled"]
    assert cancelled and cancelled[0].payload["output"] == output.id
    assert received not in str(cancelled[0].payload), "the audit names the output, never its text"
