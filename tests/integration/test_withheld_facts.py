"""A held or blocked output says "held" (or "blocked"), its ticket and which rules fired, and nothing
measured on the withheld text: no finish reason, no token counts, no scores, no seed the client did not
choose. Those facts, with a seeded stop-sequence rerun, would spell out the withheld words one probe at a
time. Checked on every path a client has: Generate, GenerateStream, GetResult / WatchResult and /score."""

from __future__ import annotations

from collections.abc import Callable

import grpc
import httpx
import pytest
from click.testing import CliRunner

from gateway.api.v1 import generation_pb2 as gen_pb
from gateway.api.v1 import generation_pb2_grpc as gen_grpc
from gateway.cli import cli
from gateway.client import GatewayClient, action_name
from moderation.types import Action
from tests.integration.conftest import FLAG_SEED, FLAG_TOKENS, PROMPT
from tests.integration.gateway_harness import ServerThread
from tests.integration.keys import make_keys


@pytest.fixture(scope="module")
def holding(make_gateway: Callable[..., ServerThread]) -> ServerThread:
    return make_gateway(Action.HOLD)


@pytest.fixture(scope="module")
def blocking(make_gateway: Callable[..., ServerThread]) -> ServerThread:
    return make_gateway(Action.BLOCK)


def assert_only_what_may_be_known(out: gen_pb.Output, action: str) -> None:
    assert action_name(out.moderation.action) == action
    assert out.ticket.startswith("tkt_") and out.text == ""
    assert out.finish_reason == gen_pb.FINISH_REASON_UNSPECIFIED
    assert out.generated_tokens == 0 and out.prompt_tokens == 0
    assert not out.moderation.scores
    assert [r.category for r in out.moderation.reasons] == ["profanity"]
    assert all(r.score == 0 and r.threshold == 0 for r in out.moderation.reasons)


@pytest.mark.parametrize(("fixture", "action"), [("holding", "HELD"), ("blocking", "BLOCKED")])
def test_unary_withheld_output_carries_no_facts_of_the_text(
    request: pytest.FixtureRequest, fixture: str, action: str
) -> None:
    server: ServerThread = request.getfixturevalue(fixture)
    with GatewayClient(server.address) as client:
        response = client.generate(PROMPT, max_new_tokens=FLAG_TOKENS, seed=FLAG_SEED)
    (out,) = response.outputs
    assert_only_what_may_be_known(out, action)
    assert response.seed == 0, "the seed reruns the withheld text"


@pytest.mark.parametrize(("fixture", "action"), [("holding", "HELD"), ("blocking", "BLOCKED")])
def test_stream_final_of_a_withheld_output_carries_no_facts_of_the_text(
    request: pytest.FixtureRequest, fixture: str, action: str
) -> None:
    server: ServerThread = request.getfixturevalue(fixture)
    with GatewayClient(server.address) as client:
        messages = list(client.generate_stream(PROMPT, max_new_tokens=FLAG_TOKENS, seed=FLAG_SEED))
    assert_only_what_may_be_known(messages[-1].final, action)


def test_stream_start_reports_only_a_seed_the_client_chose(holding: ServerThread) -> None:
    """The start is sent before the decision: a seed the server drew could replay a text held later."""
    with GatewayClient(holding.address) as client:
        unseeded = list(client.generate_stream("The garden", max_new_tokens=2))
        seeded = list(client.generate_stream("The garden", max_new_tokens=2, seed=5))
    assert unseeded[0].start.seed == 0
    assert seeded[0].start.seed == 5


def test_released_output_keeps_its_facts(holding: ServerThread) -> None:
    with GatewayClient(holding.address) as client:
        response = client.generate("The garden", max_new_tokens=3, seed=3)
    (out,) = response.outputs
    assert action_name(out.moderation.action) == "RELEASED"
    assert response.seed == 3 and out.generated_tokens > 0 and out.finish_reason != 0


def test_results_of_a_held_ticket_carry_only_its_state(holding: ServerThread) -> None:
    with GatewayClient(holding.address) as client:
        (out,) = client.generate(PROMPT, max_new_tokens=FLAG_TOKENS, seed=FLAG_SEED).outputs
    with grpc.insecure_channel(holding.address) as channel:
        stub = gen_grpc.GenerationServiceStub(channel)
        result = stub.GetResult(gen_pb.GetResultRequest(ticket=out.ticket), timeout=30)
        watch = stub.WatchResult(gen_pb.GetResultRequest(ticket=out.ticket), timeout=30)
        first = next(watch)
        watch.cancel()
    for r in (result, first):
        assert r.state == gen_pb.RESULT_STATE_PENDING and r.text == ""
        assert {f.name for f, _ in r.ListFields()} <= {"ticket", "state", "request_id", "sequence_index"}


@pytest.fixture(scope="module")
def web(make_gateway: Callable[..., ServerThread]) -> ServerThread:
    return make_gateway(Action.MASK, web=True, insecure_no_auth=False)


@pytest.fixture(scope="module")
def keys(db_url: str) -> dict[str, str]:
    return make_keys(
        db_url,
        {p: {"tenant": "withheld", "scopes": ["generate"], "policy": p} for p in ("test-hold", "test-block")},
    )


def test_score_withheld_answers_carry_no_scores(web: ServerThread, keys: dict[str, str]) -> None:
    parameters = {"max_new_tokens": FLAG_TOKENS, "seed": FLAG_SEED}
    body = {"input_data": {"input_string": [PROMPT], "parameters": parameters}}
    answers = {}
    for policy, key in keys.items():
        auth = {"Authorization": f"Bearer {key}"}
        r = httpx.post(f"{web.web_url}/score", json=body, headers=auth, timeout=60)
        assert r.status_code == 200, r.text
        answers[policy] = r.json()[0]["0"]
    assert set(answers["test-hold"]) == {"status", "ticket"}
    assert set(answers["test-block"]) == {"status", "ticket", "reasons"}
    assert answers["test-block"]["reasons"] == [{"category": "profanity"}]


def test_cli_generate_shows_categories_and_no_seed_for_a_withheld_output(holding: ServerThread) -> None:
    args = ["generate", PROMPT, "--max-new-tokens", str(FLAG_TOKENS), "--seed", str(FLAG_SEED)]
    result = CliRunner().invoke(cli, [*args, "--address", holding.address])
    assert result.exit_code == 0, result.output
    assert "HELD for human review" in result.output and "(profanity)" in result.output
    assert "seed not told: an output was withheld" in result.output
