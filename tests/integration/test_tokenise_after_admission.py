"""Prompts are tokenised after the rate-limit check and never on the event loop's thread.

A key over its limit sending huge prompts costs no tokenizer time (the refusal comes first), and a long
prompt being tokenised does not stall the other calls the event loop is serving."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.client import GatewayClient
from gateway.generation.generator import Generator
from gateway.storage.engine import make_engine
from gateway.storage.models import GenerationRequest
from moderation.types import Action
from tests.integration.gateway_harness import ServerThread
from tests.integration.keys import make_keys

HUGE = "the garden and the library " * 1000  # 27,000 characters: more tokens than the context holds


class CountingTokenizer:
    """The real tokenizer, noting which thread encoded what."""

    def __init__(self, real: Any) -> None:
        self._real = real
        self.encoded: list[tuple[str, str]] = []  # (thread name, first characters)

    def __call__(self, text: Any, *args: Any, **kwargs: Any) -> Any:
        self.encoded.append((threading.current_thread().name, str(text)[:20]))
        return self._real(text, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


@pytest.fixture(scope="module")
def server(make_gateway: Callable[..., ServerThread]) -> ServerThread:
    return make_gateway(Action.MASK, insecure_no_auth=False)


@pytest.fixture(scope="module")
def keys(db_url: str) -> dict[str, str]:
    return make_keys(
        db_url,
        {
            "one": {"tenant": "tok", "scopes": ["generate"], "requests_per_minute": 1},
            "unlimited": {"tenant": "tok", "scopes": ["generate"]},
        },
    )


@pytest.fixture
def tokenizer(generator: Generator) -> Iterator[CountingTokenizer]:
    real = generator.loaded.tokenizer
    counting = CountingTokenizer(real)
    generator.loaded.tokenizer = counting
    try:
        yield counting
    finally:
        generator.loaded.tokenizer = real


def test_prompts_are_tokenised_off_the_event_loop_and_after_the_rate_limit(
    server: ServerThread, keys: dict[str, str], tokenizer: CountingTokenizer
) -> None:
    with GatewayClient(server.address, api_key=keys["one"], timeout=60) as client:
        assert client.generate("The garden", max_new_tokens=2).outputs
        encoded = [thread for thread, text in tokenizer.encoded if text.startswith("The garden")]
        assert encoded, "the prompt was tokenised"
        assert "test-gateway" not in encoded, "never on the event loop's thread"
        tokenizer.encoded.clear()
        with pytest.raises(grpc.RpcError) as info:
            client.generate(HUGE, max_new_tokens=2)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, "the limit is checked first"
    assert not [t for t in tokenizer.encoded if t[1].startswith("the garden and")], "and costs no encoding"


def test_a_prompt_too_long_for_the_context_is_refused_by_name_and_not_recorded(
    server: ServerThread, keys: dict[str, str], db_url: str
) -> None:
    with GatewayClient(server.address, api_key=keys["unlimited"], timeout=60) as client:
        with pytest.raises(grpc.RpcError) as info:
            client.generate(["The garden", HUGE], max_new_tokens=2, request_id="too-long-1")
        with pytest.raises(grpc.RpcError) as stream_info:
            list(client.generate_stream(HUGE, max_new_tokens=2, request_id="too-long-2"))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details().startswith("input_string[1]: prompt is ")
    assert stream_info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert stream_info.value.details().startswith("input_string: prompt is ")
    engine = make_engine(db_url)
    with Session(engine) as s:
        recorded = s.scalars(
            select(GenerationRequest).where(GenerationRequest.request_id.in_(["too-long-1", "too-long-2"]))
        ).all()
    engine.dispose()
    assert not recorded
