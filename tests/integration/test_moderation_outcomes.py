"""Held and blocked outputs never carry text, in unary answers or streams."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from gateway.client import GatewayClient, action_name
from moderation.types import Action
from tests.integration.conftest import FLAG_SEED, FLAG_TOKENS, PROMPT
from tests.integration.gateway_harness import ServerThread


@pytest.fixture(scope="module")
def holding(make_gateway: Callable[..., ServerThread]) -> ServerThread:
    return make_gateway(Action.HOLD)


@pytest.fixture(scope="module")
def blocking(make_gateway: Callable[..., ServerThread]) -> ServerThread:
    return make_gateway(Action.BLOCK)


def test_held_output_has_ticket_and_no_text(holding: ServerThread, flag_word: str) -> None:
    with GatewayClient(holding.address) as client:
        response = client.generate(PROMPT, max_new_tokens=FLAG_TOKENS, seed=FLAG_SEED)
    (out,) = response.outputs
    assert action_name(out.moderation.action) == "HELD"
    assert out.text == "" and out.ticket.startswith("tkt_")
    assert flag_word not in str(response), "the held text must not appear anywhere in the response"
    (reason,) = out.moderation.reasons
    assert reason.category == "profanity" and action_name(reason.action) == "HELD"


def test_blocked_output_has_reasons_and_no_text(blocking: ServerThread, flag_word: str) -> None:
    with GatewayClient(blocking.address) as client:
        response = client.generate(PROMPT, max_new_tokens=FLAG_TOKENS, seed=FLAG_SEED)
    (out,) = response.outputs
    assert action_name(out.moderation.action) == "BLOCKED"
    assert out.text == "" and out.ticket.startswith("tkt_"), "a blocked output's ticket is for appeals"
    assert out.moderation.reasons and flag_word not in str(response)


def test_clean_output_under_blocking_policy_is_released(blocking: ServerThread, flag_word: str) -> None:
    with GatewayClient(blocking.address) as client:
        out = client.generate("The garden", max_new_tokens=4, seed=3).outputs[0]
    assert flag_word not in out.text
    assert action_name(out.moderation.action) == "RELEASED" and out.text


@pytest.mark.parametrize("fixture", ["holding", "blocking"])
def test_stream_stops_releasing_before_the_flagged_word(
    request: pytest.FixtureRequest, fixture: str, flag_word: str, gateway: ServerThread
) -> None:
    server: ServerThread = request.getfixturevalue(fixture)
    with GatewayClient(gateway.address) as client:  # the masking gateway shows where the word is
        masked = client.generate(PROMPT, max_new_tokens=FLAG_TOKENS, seed=FLAG_SEED).outputs[0].text
    with GatewayClient(server.address) as client:
        messages = list(client.generate_stream(PROMPT, max_new_tokens=FLAG_TOKENS, seed=FLAG_SEED))
    final = messages[-1].final
    assert action_name(final.moderation.action) == ("HELD" if fixture == "holding" else "BLOCKED")
    assert final.ticket.startswith("tkt_")  # held: to fetch the result; blocked: to appeal
    assert flag_word not in "".join(str(m) for m in messages)
    streamed = "".join(m.text for m in messages if m.WhichOneof("event") == "text")
    assert masked.startswith(streamed), "what was streamed is a prefix of the text"
    assert len(streamed) <= masked.index(flag_word[0] + "*"), "and it ends before the flagged word"
