"""The OpenAI-compatible API, driven by the official `openai` package against a real gateway: the same
keys, limits, moderation and records as gRPC. Held and blocked outputs in any byte of the answer, and the
audit trail beside gRPC's: test_openai_withheld.py; results and appeals: test_openai_results.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.client import GatewayClient
from gateway.storage.engine import make_engine
from gateway.storage.models import AuditEvent, GenerationRequest
from moderation.types import Action
from tests.integration.conftest import FLAG_SEED, FLAG_TOKENS, PROMPT
from tests.integration.gateway_harness import ServerThread
from tests.integration.keys import make_keys

HUGE = "the garden and the library " * 1000  # 27,000 characters: more tokens than the context holds


@pytest.fixture(scope="module")
def server(make_gateway: Callable[..., ServerThread]) -> ServerThread:
    return make_gateway(Action.MASK, web=True, insecure_no_auth=False)


@pytest.fixture(scope="module")
def keys(db_url: str) -> dict[str, str]:
    return make_keys(
        db_url,
        {
            "app": {"tenant": "oai", "scopes": ["generate"]},
            "hold": {"tenant": "oai", "scopes": ["generate"], "policy": "test-hold"},
            "block": {"tenant": "oai", "scopes": ["generate"], "policy": "test-block"},
            "revoked": {"tenant": "oai", "scopes": ["generate"], "revoked": True},
            "auditor": {"tenant": "oai", "scopes": ["audit"]},
            "slow": {"tenant": "oai", "scopes": ["generate"], "requests_per_minute": 1},
            "slow-stream": {"tenant": "oai", "scopes": ["generate"], "requests_per_minute": 1},
        },
    )


@pytest.fixture(scope="module")
def model(server: ServerThread) -> str:
    assert server.server is not None
    return server.server.pipeline.served_model


def client(server: ServerThread, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.web_url}/v1", api_key=key, max_retries=0, timeout=60)


def extension(choice: Any) -> dict[str, Any]:
    """The `modgate` object of a choice (an extension: the SDK keeps unknown fields in model_extra)."""
    extra = choice.model_extra or {}
    return dict(extra["modgate"])


def test_models_lists_the_served_name_and_grpc_uses_it(
    server: ServerThread, keys: dict[str, str], model: str
) -> None:
    assert "/" not in model  # the demo model's directory name, not its path
    assert [m.id for m in client(server, keys["app"]).models.list()] == [model]
    with GatewayClient(server.address, api_key=keys["app"]) as grpc_client:
        assert grpc_client.generate("The garden", max_new_tokens=2).model == model


def test_completion_equals_generate_and_reports_usage(
    server: ServerThread, keys: dict[str, str], model: str
) -> None:
    answer = client(server, keys["app"]).completions.create(
        model=model, prompt="The garden", max_tokens=8, seed=3, temperature=0.7, top_p=0.9
    )
    [choice] = answer.choices
    with GatewayClient(server.address, api_key=keys["app"]) as grpc_client:
        out = grpc_client.generate("The garden", max_new_tokens=8, seed=3, temperature=0.7, top_p=0.9)
    assert choice.text == out.outputs[0].text and choice.text
    assert choice.finish_reason in ("stop", "length") and extension(choice)["action"] in (
        "released",
        "masked",
    )
    assert answer.model == model and answer.object == "text_completion"
    assert answer.usage is not None and answer.usage.prompt_tokens > 0 and answer.usage.completion_tokens > 0
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + answer.usage.completion_tokens


def test_a_list_of_prompts_with_n(server: ServerThread, keys: dict[str, str], model: str) -> None:
    answer = client(server, keys["app"]).completions.create(
        model=model, prompt=["The garden", "The library"], n=2, max_tokens=4, seed=5
    )
    assert [c.index for c in answer.choices] == [0, 1, 2, 3]
    assert all(isinstance(c.text, str) for c in answer.choices)


def test_streaming_sends_the_same_text_then_done(
    server: ServerThread, keys: dict[str, str], model: str
) -> None:
    oai = client(server, keys["app"])
    whole = oai.completions.create(model=model, prompt=PROMPT, max_tokens=12, seed=9).choices[0].text
    chunks = list(
        oai.completions.create(
            model=model,
            prompt=PROMPT,
            max_tokens=12,
            seed=9,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text == whole
    finals = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finals in (["stop"], ["length"])
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_chat_completions_plain_and_streamed(server: ServerThread, keys: dict[str, str], model: str) -> None:
    oai = client(server, keys["app"])
    messages: Any = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Tell me a story."},
    ]
    answer = oai.chat.completions.create(model=model, messages=messages, max_tokens=10, seed=2)
    message = answer.choices[0].message
    assert answer.object == "chat.completion" and message.role == "assistant" and message.content is not None
    streamed = list(
        oai.chat.completions.create(model=model, messages=messages, max_tokens=10, seed=2, stream=True)
    )
    assert streamed[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == message.content


def test_held_output_is_a_content_filter_choice_with_a_ticket(
    server: ServerThread, keys: dict[str, str], model: str, db_url: str
) -> None:
    answer = client(server, keys["hold"]).completions.create(
        model=model, prompt=PROMPT, max_tokens=FLAG_TOKENS, seed=FLAG_SEED
    )
    [choice] = answer.choices
    assert choice.finish_reason == "content_filter" and choice.text == ""
    modgate = extension(choice)
    assert modgate["action"] == "held" and modgate["categories"] == ["profanity"] and modgate["ticket"]
    assert answer.usage is not None and answer.usage.completion_tokens == 0  # a length would be a clue
    result = httpx.get(
        f"{server.web_url}/v1/modgate/results/{modgate['ticket']}",
        headers={"Authorization": f"Bearer {keys['hold']}"},
        timeout=30,
    )
    assert result.status_code == 200 and result.json()["state"] == "pending" and result.json()["text"] is None
    other_tenant = httpx.get(
        f"{server.web_url}/v1/modgate/results/{modgate['ticket']}",
        headers={"Authorization": f"Bearer {keys['auditor']}"},
        timeout=30,
    )
    assert other_tenant.status_code == 403  # no generate scope


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"temperature": -1}, "temperature"),
        ({"max_tokens": 100_000}, "max_tokens"),
        ({"logprobs": 2}, "logprobs"),
        ({"logprobs": 0}, "logprobs"),
        ({"presence_penalty": 0.5}, "presence_penalty"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"n": 2, "stream": True}, "n"),
    ],
)
def test_bad_parameters_are_bad_requests_naming_them(
    server: ServerThread, keys: dict[str, str], model: str, params: dict[str, Any], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client(server, keys["app"]).completions.create(model=model, prompt="The garden", **params)
    assert info.value.param == param and info.value.status_code == 400
    assert isinstance(info.value.body, dict) and info.value.body["type"] == "invalid_request_error"


def test_unknown_arguments_and_models_are_refused(
    server: ServerThread, keys: dict[str, str], model: str
) -> None:
    oai = client(server, keys["app"])
    with pytest.raises(openai.BadRequestError) as info:
        oai.completions.create(model=model, prompt="x", extra_body={"temprature": 0.5})
    assert info.value.param == "temprature"
    with pytest.raises(openai.BadRequestError) as chat:
        oai.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "x"}], extra_body={"prompt_cache_key": "k"}
        )
    assert chat.value.param == "prompt_cache_key" and "prompt_cache_key" in chat.value.message
    with pytest.raises(openai.NotFoundError) as missing:
        oai.completions.create(model="gpt-4o", prompt="x")
    assert missing.value.param == "model"


def test_keys_scopes_and_rate_limits(server: ServerThread, keys: dict[str, str], model: str) -> None:
    with pytest.raises(openai.AuthenticationError):
        client(server, keys["revoked"]).completions.create(model=model, prompt="x", max_tokens=2)
    with pytest.raises(openai.PermissionDeniedError):
        client(server, keys["auditor"]).completions.create(model=model, prompt="x", max_tokens=2)
    slow = client(server, keys["slow"])
    slow.completions.create(model=model, prompt="x", max_tokens=2)
    with pytest.raises(openai.RateLimitError) as info:
        slow.completions.create(model=model, prompt="x", max_tokens=2)
    assert int(info.value.response.headers["retry-after"]) >= 1


def test_a_refused_stream_is_an_http_error_not_a_200(
    server: ServerThread, keys: dict[str, str], model: str, db_url: str
) -> None:
    """Admission (rate limit, context length) runs before the stream's 200: the SDK raises the same
    errors as for a plain call, with `Retry-After` and the OpenAI name of the prompt field."""
    slow = client(server, keys["slow-stream"])
    assert list(slow.completions.create(model=model, prompt="x", max_tokens=2, stream=True))
    with pytest.raises(openai.RateLimitError) as limited:
        slow.completions.create(model=model, prompt="x", max_tokens=2, stream=True)
    assert int(limited.value.response.headers["retry-after"]) >= 1
    oai = client(server, keys["app"])
    with pytest.raises(openai.BadRequestError) as long_prompt:
        oai.completions.create(
            model=model, prompt=HUGE, max_tokens=2, stream=True, extra_headers={"X-Request-Id": "oai-huge"}
        )
    assert long_prompt.value.param == "prompt" and "context" in long_prompt.value.message
    with pytest.raises(openai.BadRequestError) as long_chat:
        oai.chat.completions.create(
            model=model, messages=[{"role": "user", "content": HUGE}], max_tokens=2, stream=True
        )
    assert long_chat.value.param == "messages"
    engine = make_engine(db_url)
    with Session(engine) as s:  # refused before it was recorded
        huge = select(GenerationRequest).where(GenerationRequest.request_id == "oai-huge")
        assert not s.scalars(huge).all()
    engine.dispose()


def test_oversized_and_deeply_nested_bodies_are_refused_in_openais_shape(
    server: ServerThread, keys: dict[str, str]
) -> None:
    headers = {"Authorization": f"Bearer {keys['app']}", "Content-Type": "application/json"}
    url = f"{server.web_url}/v1/completions"
    big = httpx.post(url, content=b'{"prompt": "' + b"a" * (1 << 20) + b'"}', headers=headers, timeout=30)
    assert big.status_code == 413 and big.json()["error"]["code"] == "request_too_large"
    deep = httpx.post(url, content=b"[" * 100_000 + b"]" * 100_000, headers=headers, timeout=30)
    assert deep.status_code == 400 and deep.json()["error"]["param"] == "body"


def test_the_end_user_is_recorded_with_the_request(
    server: ServerThread, keys: dict[str, str], model: str, db_url: str
) -> None:
    oai = client(server, keys["app"])
    answer = oai.completions.create(model=model, prompt="The garden", max_tokens=2, user="customer-42")
    engine = make_engine(db_url)
    with Session(engine) as s:
        request = s.scalars(
            select(GenerationRequest).where(GenerationRequest.request_id == answer.id.removeprefix("cmpl-"))
        ).one()
        assert request.parameters["user"] == "customer-42"
    engine.dispose()
    with pytest.raises(openai.BadRequestError) as info:
        oai.completions.create(model=model, prompt="x", user="x" * 300)
    assert info.value.param == "user"


def test_chat_metadata_is_recorded_with_the_request_and_its_audit_event(
    server: ServerThread, keys: dict[str, str], model: str, db_url: str
) -> None:
    metadata = {"conversation": "c-17", "team": "support"}
    answer = client(server, keys["app"]).chat.completions.create(
        model=model,
        messages=[{"role": "user", "name": "alice", "content": "Hello"}],
        max_tokens=2,
        metadata=metadata,
        user="customer-7",
    )
    request_id = answer.id.removeprefix("chatcmpl-")
    engine = make_engine(db_url)
    with Session(engine) as s:
        request = s.scalars(select(GenerationRequest).where(GenerationRequest.request_id == request_id)).one()
        assert request.parameters["metadata"] == metadata and request.parameters["user"] == "customer-7"
        received = s.scalars(
            select(AuditEvent).where(
                AuditEvent.request_id == request_id, AuditEvent.event_type == "request.received"
            )
        ).one()
        assert received.payload["parameters"]["metadata"] == metadata
    engine.dispose()


@pytest.mark.parametrize("name", ["max_tokens", "max_completion_tokens"])
def test_a_chat_refusal_names_the_synonym_the_client_sent(
    server: ServerThread, keys: dict[str, str], model: str, name: str
) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client(server, keys["app"]).chat.completions.create(
            model=model, messages=[{"role": "user", "content": "x"}], **{name: 100_000}
        )
    assert info.value.param == name and name in info.value.message
