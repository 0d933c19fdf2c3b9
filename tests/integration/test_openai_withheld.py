"""Held and blocked outputs on /v1, completions and chat alike: the withheld text is in no byte of the
HTTP answer, streamed or not; the `openai` package sees a content-filter choice with no text; and the
calls leave the same audit trail as gRPC's.

The gateway here writes a chat's messages out as their last content alone, so that a chat call's prompt
is PROMPT and the demo model writes the word the word list flags (tests/integration/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest

from gateway.client import GatewayClient
from moderation.types import Action
from tests.integration.conftest import FLAG_SEED, FLAG_TOKENS, PROMPT
from tests.integration.gateway_harness import ServerThread
from tests.integration.keys import make_keys
from tests.integration.records import rows_for


@pytest.fixture(scope="module")
def server(make_gateway: Callable[..., ServerThread]) -> ServerThread:
    return make_gateway(
        Action.MASK,
        web=True,
        insecure_no_auth=False,
        chat_template="{{ messages[-1].content }}",
        chat_stop="",
    )


@pytest.fixture(scope="module")
def keys(db_url: str) -> dict[str, str]:
    return make_keys(
        db_url,
        {
            "hold": {"tenant": "oai-withheld", "scopes": ["generate"], "policy": "test-hold"},
            "block": {"tenant": "oai-withheld", "scopes": ["generate"], "policy": "test-block"},
        },
    )


@pytest.fixture(scope="module")
def model(server: ServerThread) -> str:
    assert server.server is not None
    return server.server.pipeline.served_model


def audit_trail(db_url: str, request_id: str) -> list[tuple[str, str, str | None, str | None]]:
    """The call's audit events: type, actor, tenant, action, in the order they were written."""
    return [(e.event_type, e.actor, e.tenant, e.action) for e in rows_for(db_url, request_id)[2]]


def body_for(endpoint: str, model: str, stream: bool) -> dict[str, Any]:
    common = {"model": model, "max_tokens": FLAG_TOKENS, "seed": FLAG_SEED, "stream": stream}
    if endpoint == "chat/completions":
        return {**common, "messages": [{"role": "user", "content": PROMPT}]}
    return {**common, "prompt": PROMPT}


@pytest.mark.parametrize("endpoint", ["completions", "chat/completions"])
@pytest.mark.parametrize("key", ["hold", "block"])
@pytest.mark.parametrize("stream", [False, True])
def test_withheld_text_is_in_no_byte_of_the_answer(
    server: ServerThread,
    keys: dict[str, str],
    model: str,
    db_url: str,
    endpoint: str,
    key: str,
    stream: bool,
) -> None:
    request_id = f"oai-leak-{endpoint.replace('/', '-')}-{key}-{stream}"
    r = httpx.post(
        f"{server.web_url}/v1/{endpoint}",
        json=body_for(endpoint, model, stream),
        headers={"Authorization": f"Bearer {keys[key]}", "X-Request-Id": request_id},
        timeout=60,
    )
    assert r.status_code == 200
    assert b"content_filter" in r.content
    [text] = [o.generated_text for o in rows_for(db_url, request_id)[1]]
    words = [w for w in text.split() if len(w) >= 4]
    assert text.strip() and text.encode() not in r.content
    assert not [w for w in words if w.encode() in r.content]
    if stream:
        assert r.content.rstrip().endswith(b"data: [DONE]")


@pytest.mark.parametrize("chat", [False, True])
def test_a_held_stream_through_the_sdk_is_a_content_filter_choice_with_no_text(
    server: ServerThread, keys: dict[str, str], model: str, chat: bool
) -> None:
    oai = openai.OpenAI(base_url=f"{server.web_url}/v1", api_key=keys["hold"], max_retries=0, timeout=60)
    common: dict[str, Any] = {"model": model, "max_tokens": FLAG_TOKENS, "seed": FLAG_SEED, "stream": True}
    if chat:
        chunks = list(oai.chat.completions.create(messages=[{"role": "user", "content": PROMPT}], **common))
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    else:
        chunks = list(oai.completions.create(prompt=PROMPT, **common))
        text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text == ""
    [final] = [c.choices[0] for c in chunks if c.choices and c.choices[0].finish_reason]
    assert final.finish_reason == "content_filter"
    modgate = dict((final.model_extra or {})["modgate"])
    assert modgate["action"] == "held" and modgate["categories"] == ["profanity"] and modgate["ticket"]


@pytest.mark.parametrize("stream", [False, True])
def test_a_v1_call_leaves_the_same_audit_trail_as_grpc(
    server: ServerThread, keys: dict[str, str], model: str, db_url: str, stream: bool
) -> None:
    """Request received, outcome, review item: the same events, actors, tenant and actions."""
    via_grpc, via_http = f"oai-audit-grpc-{stream}", f"oai-audit-http-{stream}"
    with GatewayClient(server.address, api_key=keys["hold"]) as grpc_client:
        if stream:
            list(
                grpc_client.generate_stream(
                    PROMPT, request_id=via_grpc, max_new_tokens=FLAG_TOKENS, seed=FLAG_SEED
                )
            )
        else:
            grpc_client.generate(PROMPT, request_id=via_grpc, max_new_tokens=FLAG_TOKENS, seed=FLAG_SEED)
    r = httpx.post(
        f"{server.web_url}/v1/completions",
        json=body_for("completions", model, stream),
        headers={"Authorization": f"Bearer {keys['hold']}", "X-Request-Id": via_http},
        timeout=60,
    )
    assert r.status_code == 200
    trail = audit_trail(db_url, via_grpc)
    assert trail == audit_trail(db_url, via_http)
    events = [event for event, *_ in trail]
    assert events[0] == "request.received" and "review.held" in events
