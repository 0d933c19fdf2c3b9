"""A stream held after it released some words: the output row keeps the prefix the client was sent
(`streamed_text`), and no audit event carries it."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.client import GatewayClient
from gateway.generation.generator import Generator
from gateway.generation.params import Limits, RawParams, resolve
from gateway.storage.engine import make_engine
from gateway.storage.models import AuditEvent, GenerationOutput, GenerationRequest
from moderation.types import Action
from tests.integration.conftest import gateway_components, policy_for, word_moderator
from tests.integration.gateway_harness import ServerThread

PROMPT = "Once upon a time in a small village"
SEED, TOKENS = 12, 32


@pytest.fixture(scope="module")
def late_word(generator: Generator) -> str:
    """A plain word the demo model writes well into its text for PROMPT and SEED (so words come before)."""
    (seq,) = generator.generate(
        PROMPT, resolve(RawParams(seed=SEED, max_new_tokens=TOKENS), Limits()), should_stop=lambda: False
    )
    words = seq.text.split()
    late = [w for w in words[4:] if re.fullmatch(r"[A-Za-z]{3,}", w) and w not in words[:4]]
    assert late, f"no plain word late in {seq.text!r}"
    return late[0]


@pytest.fixture(scope="module")
def server(generator: Generator, db_url: str, late_word: str) -> Iterator[ServerThread]:
    """The demo model writes 32 tokens in a few milliseconds: when the whole text reaches the stream's
    moderation in one piece (deltas that arrive while a round is scored are joined), the late word is
    seen before anything is released and nothing is, correctly, but this test is about a stream held
    after a release. So each decoding step takes 20 ms more here, as a real model's would."""
    engine = make_engine(db_url)
    hold = policy_for(Action.HOLD)
    moderator = word_moderator(late_word, hold)
    model = generator.loaded.model
    original = model.forward

    def slow_forward(*args: object, **kwargs: object) -> object:
        time.sleep(0.02)
        return original(*args, **kwargs)

    model.forward = slow_forward
    server = ServerThread(gateway_components(generator, moderator, engine)).start()
    try:
        yield server
    finally:
        server.stop(grace=1)
        engine.dispose()
        del model.forward  # the class's forward again, for the session's other tests


def test_a_held_streams_released_prefix_is_kept_with_the_output_not_in_the_audit(
    server: ServerThread, db_url: str
) -> None:
    with GatewayClient(server.address) as client:
        messages = list(
            client.generate_stream(PROMPT, max_new_tokens=TOKENS, seed=SEED, request_id="held-prefix")
        )
    streamed = "".join(m.text for m in messages if m.WhichOneof("event") == "text")
    assert messages[-1].final.ticket and streamed.strip(), "words were released, then the rest was held"
    engine = make_engine(db_url)
    with Session(engine) as s:
        request = s.scalars(
            select(GenerationRequest).where(GenerationRequest.request_id == "held-prefix")
        ).one()
        output = s.scalars(
            select(GenerationOutput).where(GenerationOutput.generation_request_id == request.id)
        ).one()
        events = list(s.scalars(select(AuditEvent).where(AuditEvent.request_id == "held-prefix")))
        assert output.streamed_text == streamed and output.released_text is None
        assert output.generated_text.startswith(streamed)
    engine.dispose()
    assert streamed not in json.dumps([e.payload for e in events])
