"""POST /score over real HTTP: the card's request shape, the same keys, limits and moderation as gRPC.
Held and blocked sequences are never text in the body."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.storage.engine import make_engine
from gateway.storage.models import GenerationRequest, RequestStatus
from moderation.types import Action
from tests.integration.conftest import FLAG_SEED, FLAG_TOKENS, PROMPT
from tests.integration.gateway_harness import ServerThread
from tests.integration.keys import make_keys


@pytest.fixture(scope="module")
def server(make_gateway: Callable[..., ServerThread]) -> ServerThread:
    return make_gateway(Action.MASK, web=True, insecure_no_auth=False)


@pytest.fixture(scope="module")
def keys(db_url: str) -> dict[str, str]:
    policies = {
        p: {"tenant": "http", "scopes": ["generate"], "policy": p}
        for p in ("test-mask", "test-hold", "test-block")
    }
    return make_keys(
        db_url,
        {
            **policies,
            "audit": {"tenant": "http", "scopes": ["audit"]},
            "slow": {"tenant": "http", "scopes": ["generate"], "requests_per_minute": 1},
        },
    )


def score(server: ServerThread, key: str | None, body: object, **headers: str) -> httpx.Response:
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return httpx.post(f"{server.web_url}/score", json=body, headers=headers, timeout=60)


def card_body(prompts: list[str], **parameters: object) -> dict[str, object]:
    return {"input_data": {"input_string": prompts, "parameters": parameters}}


def test_card_shape_released_text(server: ServerThread, keys: dict[str, str]) -> None:
    r = score(
        server,
        keys["test-mask"],
        card_body(["The garden", "The library"], max_new_tokens=4, seed=1, num_return_sequences=2),
        **{"X-Request-Id": "http-1"},
    )
    assert r.status_code == 200 and r.headers["x-request-id"] == "http-1"
    body = r.json()
    assert isinstance(body, list) and len(body) == 2 and all(set(o) == {"0", "1"} for o in body)
    assert all(isinstance(text, str) and text for o in body for text in o.values())


def test_masked_held_and_blocked_never_leak_text(
    server: ServerThread, keys: dict[str, str], flag_word: str
) -> None:
    body = card_body([PROMPT], max_new_tokens=FLAG_TOKENS, seed=FLAG_SEED)
    masked = score(server, keys["test-mask"], body).json()[0]["0"]
    assert flag_word not in masked and flag_word[0] + "*" in masked
    held = score(server, keys["test-hold"], body)
    assert held.json() == [{"0": {"status": "held", "ticket": held.json()[0]["0"]["ticket"]}}]
    assert held.json()[0]["0"]["ticket"].startswith("tkt_") and flag_word not in held.text
    blocked = score(server, keys["test-block"], body)
    answer = blocked.json()[0]["0"]
    assert answer["status"] == "blocked" and answer["reasons"][0]["category"] == "profanity"
    assert flag_word not in blocked.text


@pytest.mark.parametrize(
    ("key", "body", "status", "field"),
    [
        (None, card_body(["x"]), 401, None),
        ("mg_00000000_" + "x" * 43, card_body(["x"]), 401, None),
        ("audit", card_body(["x"]), 403, None),
        (
            "test-mask",
            {"input_data": {"input_string": "x", "parameters": {"top_p": 3}}},
            400,
            "input_data.parameters.top_p",
        ),
        ("test-mask", card_body(["x"], temperature="hot"), 400, "input_data.parameters.temperature"),
        ("test-mask", card_body(["x"], max_length=5), 400, "input_data.parameters.max_length"),
        ("test-mask", card_body(["x"], stop=[""]), 400, "input_data.parameters.stop[0]"),
        ("test-mask", card_body([]), 400, "input_data.input_string"),
        ("test-mask", card_body(["ok", ""]), 400, "input_data.input_string[1]"),
        ("test-mask", {"prompt": "x"}, 400, "body"),
        ("test-mask", [1, 2], 400, "body"),
    ],
)
def test_errors_are_json_with_status_and_field(
    server: ServerThread, keys: dict[str, str], key: str | None, body: object, status: int, field: str | None
) -> None:
    r = score(server, keys.get(key or "", key), body)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["message"] and "Traceback" not in r.text
    assert error.get("field") == field
    if status == 401:
        assert r.headers["www-authenticate"] == "Bearer"


def test_not_json_and_rate_limits(server: ServerThread, keys: dict[str, str]) -> None:
    r = httpx.post(
        f"{server.web_url}/score", content=b"{nope", headers={"Authorization": f"Bearer {keys['test-mask']}"}
    )
    assert r.status_code == 400 and r.json()["error"]["field"] == "body"
    nan = httpx.post(
        f"{server.web_url}/score",
        content=b'{"input_data": {"input_string": ["x"], "parameters": {"temperature": NaN}}}',
        headers={"Authorization": f"Bearer {keys['test-mask']}"},
    )
    assert nan.status_code == 400 and nan.json()["error"]["field"] == "input_data.parameters.temperature"
    assert score(server, keys["slow"], card_body(["x"], max_new_tokens=1)).status_code == 200
    limited = score(server, keys["slow"], card_body(["x"], max_new_tokens=1))
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1


@pytest.mark.parametrize("depth", [100_000, 5_000])
def test_deeply_nested_json_is_400(server: ServerThread, keys: dict[str, str], depth: int) -> None:
    nested = b'{"input_data": {"input_string": ["x"], "parameters": {"stop": ' + b"[" * depth + b"]" * depth
    r = httpx.post(
        f"{server.web_url}/score",
        content=nested + b"}}}",
        headers={"Authorization": f"Bearer {keys['test-mask']}"},
        timeout=60,
    )
    assert r.status_code == 400, r.text
    assert r.json()["error"]["field"] == "body" and "nested" in r.json()["error"]["message"]


def test_oversized_bodies_are_413_declared_or_chunked(server: ServerThread, keys: dict[str, str]) -> None:
    auth = {"Authorization": f"Bearer {keys['test-mask']}"}
    big = b'{"input_data": {"input_string": ["' + b"x" * (1 << 20) + b'"]}}'
    declared = httpx.post(f"{server.web_url}/score", content=big, headers=auth, timeout=60)

    def chunks() -> Iterator[bytes]:  # no Content-Length: Transfer-Encoding: chunked
        for i in range(0, len(big), 65536):
            yield big[i : i + 65536]

    chunked = httpx.post(f"{server.web_url}/score", content=chunks(), headers=auth, timeout=60)
    for r in (declared, chunked):
        assert r.status_code == 413, r.text
        assert r.json()["error"]["field"] == "body" and "bytes" in r.json()["error"]["message"]


printable = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=30)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | printable,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(printable, inner, max_size=3),
    max_leaves=8,
)
parameter_names = st.sampled_from(
    [
        "temperature",
        "top_p",
        "top_k",
        "max_new_tokens",
        "do_sample",
        "seed",
        "stop",
        "num_return_sequences",
        "repetition_penalty",
        "min_new_tokens",
        "bogus",
    ]
)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    prompts=st.one_of(st.lists(printable, max_size=4), json_values),
    parameters=st.one_of(st.dictionaries(parameter_names, json_values, max_size=4), json_values),
)
def test_random_bodies_get_200_or_a_clear_4xx(
    server: ServerThread, keys: dict[str, str], prompts: object, parameters: object
) -> None:
    if isinstance(parameters, dict) and parameters.get("max_new_tokens") not in (None, 1, 2):
        parameters = {**parameters, "max_new_tokens": 2}  # keep valid generations short
    r = score(server, keys["test-mask"], {"input_data": {"input_string": prompts, "parameters": parameters}})
    assert r.status_code in (200, 400), r.text
    if r.status_code == 400:
        assert r.json()["error"]["code"] == "INVALID_ARGUMENT" and r.json()["error"]["field"]


def test_no_half_written_requests_after_http_traffic(server: ServerThread, db_url: str) -> None:
    engine = make_engine(db_url)
    with Session(engine) as s:
        open_ = s.scalar(
            select(func.count())
            .select_from(GenerationRequest)
            .where(
                GenerationRequest.tenant == "http",
                GenerationRequest.status.in_([RequestStatus.RECEIVED, RequestStatus.GENERATING]),
            )
        )
        done = s.scalar(
            select(func.count()).select_from(GenerationRequest).where(GenerationRequest.tenant == "http")
        )
    engine.dispose()
    assert open_ == 0 and done > 0
