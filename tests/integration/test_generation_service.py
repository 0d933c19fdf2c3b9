"""The generation service end to end: a real grpc.aio server, called through the generated stub."""

from __future__ import annotations

import grpc
import pytest

from gateway.api.v1 import generation_pb2 as gen_pb
from gateway.api.v1 import generation_pb2_grpc as gen_grpc
from gateway.client import GatewayClient, action_name, sampling_parameters
from tests.integration.conftest import FLAG_SEED, FLAG_TOKENS, PROMPT
from tests.integration.gateway_harness import ServerThread


@pytest.fixture
def client(gateway: ServerThread) -> GatewayClient:
    with GatewayClient(gateway.address, timeout=60) as c:
        yield c


def test_unary_with_several_prompts(client: GatewayClient) -> None:
    response = client.generate(
        ["Once upon a time", "The library opens"], max_new_tokens=8, seed=1, num_return_sequences=2
    )
    assert response.request_id and response.seed == 1
    assert [(o.prompt_index, o.sequence_index) for o in response.outputs] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    for o in response.outputs:
        assert action_name(o.moderation.action) in ("RELEASED", "MASKED")
        assert o.text
        assert o.prompt_tokens > 0 and 0 < o.generated_tokens <= 8
        assert o.moderation.policy == "test-mask" and len(o.moderation.policy_version) == 12
        assert [s.name for s in o.moderation.scorers] == ["profanity"]


@pytest.mark.parametrize("batched", [False, True])
def test_the_smallest_divisors_of_the_logits_still_sample(client: GatewayClient, batched: bool) -> None:
    """temperature and repetition_penalty at their lower bound (0.01) keep the logits finite: text, not a
    500 (at 1.6e-158 they overflowed to infinities and NaN probabilities)."""
    params = {"temperature": 0.01, "repetition_penalty": 0.01, "max_new_tokens": 6, "seed": 3}
    prompts = [PROMPT, "The garden"] if batched else [PROMPT]
    response = client.generate(prompts, **params)
    assert len(response.outputs) == len(prompts) and all(o.generated_tokens > 0 for o in response.outputs)


def test_seed_gives_the_same_text_twice(client: GatewayClient) -> None:
    a = client.generate(PROMPT, max_new_tokens=12, seed=1234)
    b = client.generate(PROMPT, max_new_tokens=12, seed=1234)
    c = client.generate(PROMPT, max_new_tokens=12, seed=4321)
    assert a.outputs[0].text == b.outputs[0].text
    assert a.outputs[0].text != c.outputs[0].text


def test_server_picks_and_reports_a_seed_that_reproduces(client: GatewayClient) -> None:
    first = client.generate(PROMPT, max_new_tokens=10)
    again = client.generate(PROMPT, max_new_tokens=10, seed=first.seed)
    assert again.outputs[0].text == first.outputs[0].text


def test_greedy_is_deterministic_without_seed(client: GatewayClient) -> None:
    a = client.generate(PROMPT, max_new_tokens=10, do_sample=False)
    b = client.generate(PROMPT, max_new_tokens=10, do_sample=False, seed=99)
    assert a.outputs[0].text == b.outputs[0].text


def test_stop_sequence_cuts_text_and_sets_finish_reason(client: GatewayClient) -> None:
    full = client.generate(PROMPT, max_new_tokens=24, seed=5).outputs[0]
    assert full.finish_reason == gen_pb.FINISH_REASON_LENGTH
    stop = full.text[len(full.text) // 2 : len(full.text) // 2 + 2]
    cut = client.generate(PROMPT, max_new_tokens=24, seed=5, stop=[stop]).outputs[0]
    assert cut.finish_reason == gen_pb.FINISH_REASON_STOP_SEQUENCE
    assert cut.text == full.text[: full.text.index(stop)]
    assert cut.generated_tokens < full.generated_tokens


def test_flagged_word_comes_back_masked(client: GatewayClient, flag_word: str) -> None:
    out = client.generate(PROMPT, max_new_tokens=FLAG_TOKENS, seed=FLAG_SEED).outputs[0]
    assert action_name(out.moderation.action) == "MASKED"
    assert flag_word not in out.text
    masked = flag_word[0] + "*" * (len(flag_word) - 1)
    assert masked in out.text
    assert out.moderation.reasons[0].category == "profanity"
    assert out.moderation.scores["profanity"] == 1.0


INVALID = [
    ({"temperature": 0.0}, "temperature"),
    ({"temperature": float("nan")}, "temperature"),
    ({"top_p": 1.5}, "top_p"),
    ({"top_k": -3}, "top_k"),
    ({"max_new_tokens": 0}, "max_new_tokens"),
    ({"max_new_tokens": 100_000}, "max_new_tokens"),
    ({"repetition_penalty": -1.0}, "repetition_penalty"),
    ({"num_return_sequences": 50}, "num_return_sequences"),
    ({"min_new_tokens": 20, "max_new_tokens": 10}, "min_new_tokens"),
    ({"stop": [""]}, "stop[0]"),
    ({"stop": ["x"] * 20}, "stop"),
    ({"seed": 2**64 - 1}, "seed"),
]


@pytest.mark.parametrize(("params", "field"), INVALID)
def test_each_invalid_parameter_gets_invalid_argument_naming_it(
    client: GatewayClient, params: dict, field: str
) -> None:
    with pytest.raises(grpc.RpcError) as info:
        client.generate(PROMPT, **params)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details().startswith(f"{field}: ")


@pytest.mark.parametrize(
    ("prompts", "message"),
    [
        ([], "input_string: at least one prompt"),
        (["ok", ""], "input_string[1]: must not be empty"),
        (["x"] * 17, "input_string: at most 16 prompts"),
        (["word " * 3000], "exceeds the model's context of 2048 tokens"),
    ],
)
def test_invalid_prompts(client: GatewayClient, prompts: list[str], message: str) -> None:
    with pytest.raises(grpc.RpcError) as info:
        client.generate(prompts, max_new_tokens=5)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in info.value.details()


def test_request_id_comes_back_in_metadata_and_body(gateway: ServerThread) -> None:
    with grpc.insecure_channel(gateway.address) as channel:
        stub = gen_grpc.GenerationServiceStub(channel)
        response, call = stub.Generate.with_call(
            gen_pb.GenerateRequest(input_string=["hi"], parameters=sampling_parameters(max_new_tokens=2)),
            metadata=(("x-request-id", "my-req-42"),),
        )
        assert response.request_id == "my-req-42"
        assert ("x-request-id", "my-req-42") in call.initial_metadata()
        bad = stub.Generate(
            gen_pb.GenerateRequest(input_string=["hi"], parameters=sampling_parameters(max_new_tokens=2)),
            metadata=(("x-request-id", "bad id with spaces"),),
        )
        assert bad.request_id != "bad id with spaces" and len(bad.request_id) == 32


def test_stream_releases_text_then_final_outcome(client: GatewayClient) -> None:
    messages = list(client.generate_stream(PROMPT, max_new_tokens=16, seed=77))
    kinds = [m.WhichOneof("event") for m in messages]
    assert kinds[0] == "start" and kinds[-1] == "final"
    assert set(kinds[1:-1]) <= {"text"} and len(kinds) > 3, "text arrives in several chunks"
    streamed = "".join(m.text for m in messages[1:-1])
    unary = client.generate(PROMPT, max_new_tokens=16, seed=77).outputs[0]
    assert streamed == unary.text
    final = messages[-1].final
    assert final.text == "" and action_name(final.moderation.action) == action_name(unary.moderation.action)
    assert final.generated_tokens == unary.generated_tokens


def test_stream_masks_the_flagged_word(client: GatewayClient, flag_word: str) -> None:
    messages = list(client.generate_stream(PROMPT, max_new_tokens=FLAG_TOKENS, seed=FLAG_SEED))
    streamed = "".join(m.text for m in messages if m.WhichOneof("event") == "text")
    assert flag_word not in streamed and flag_word[0] + "*" * (len(flag_word) - 1) in streamed
    assert action_name(messages[-1].final.moderation.action) == "MASKED"


def test_stream_stop_sequence(client: GatewayClient) -> None:
    full = client.generate(PROMPT, max_new_tokens=20, seed=8).outputs[0].text
    stop = full[len(full) // 2 : len(full) // 2 + 3]
    messages = list(client.generate_stream(PROMPT, max_new_tokens=20, seed=8, stop=[stop]))
    streamed = "".join(m.text for m in messages if m.WhichOneof("event") == "text")
    assert streamed == full[: full.index(stop)]
    assert messages[-1].final.finish_reason == gen_pb.FINISH_REASON_STOP_SEQUENCE


def test_stream_invalid_arguments(client: GatewayClient) -> None:
    with pytest.raises(grpc.RpcError) as info:
        list(client.generate_stream(PROMPT, num_return_sequences=2))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details().startswith("parameters.num_return_sequences: ")
    with pytest.raises(grpc.RpcError) as info:
        list(client.generate_stream("   "))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details().startswith("input_string: ")
