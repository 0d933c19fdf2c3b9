"""QA sampling inside a running gateway: released and masked outputs of a sampled policy are drawn in
the transaction that records them, held ones never, the draw is the output id's, and the client gets
exactly what it would get without QA."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.client import GatewayClient, action_name
from gateway.config import Settings
from gateway.review.qa import draw_value
from gateway.server import StartupError, qa_sample_rates
from gateway.storage.engine import make_engine
from gateway.storage.models import QaSample
from moderation.types import Action
from tests.integration.conftest import FLAG_SEED, FLAG_TOKENS, PROMPT
from tests.integration.gateway_harness import ServerThread
from tests.integration.records import rows_for

PROMPTS = [PROMPT, "The garden", "A letter to", "Yesterday we"]


def qa(policy: str, rate: float) -> dict[str, object]:
    return {"review": {"qa": {policy: {"sample_rate": rate}}}}


def samples(db_url: str, output_ids: list[str]) -> dict[str, QaSample]:
    engine = make_engine(db_url)
    with Session(engine) as s:
        rows = s.scalars(select(QaSample).where(QaSample.output_id.in_(output_ids))).all()
        s.expunge_all()
    engine.dispose()
    return {r.output_id: r for r in rows}


def call(server: ServerThread) -> tuple[str, list[tuple[str, str]]]:
    with GatewayClient(server.address) as client:
        response = client.generate(PROMPTS, max_new_tokens=FLAG_TOKENS, seed=FLAG_SEED)
    return response.request_id, [(action_name(o.moderation.action), o.text) for o in response.outputs]


@pytest.fixture(scope="module")
def masking_plain(make_gateway: Callable[..., ServerThread]) -> ServerThread:
    return make_gateway(Action.MASK)


def test_released_and_masked_outputs_are_drawn_and_the_client_sees_no_difference(
    make_gateway: Callable[..., ServerThread], masking_plain: ServerThread, db_url: str, flag_word: str
) -> None:
    sampled = make_gateway(Action.MASK, **qa("test-mask", 1.0))
    request_id, answer = call(sampled)
    assert {action for action, _ in answer} == {"MASKED", "RELEASED"}
    assert answer == call(masking_plain)[1], "QA sampling changes nothing the client gets"
    _, outputs, audit = rows_for(db_url, request_id)
    drawn = samples(db_url, [o.id for o in outputs])
    assert set(drawn) == {o.id for o in outputs}
    assert {(s.policy_name, s.sample_rate, s.state.value) for s in drawn.values()} == {
        ("test-mask", 1.0, "pending")
    }
    masked = next(o for o in outputs if o.action.value == "mask")
    assert flag_word in masked.generated_text and flag_word not in (masked.released_text or "")
    for e in audit:
        assert flag_word not in str(e.payload)


def test_held_outputs_are_never_drawn(make_gateway: Callable[..., ServerThread], db_url: str) -> None:
    holding = make_gateway(Action.HOLD, **qa("test-hold", 1.0))
    request_id, answer = call(holding)
    assert "HELD" in {a for a, _ in answer} and "RELEASED" in {a for a, _ in answer}
    _, outputs, _ = rows_for(db_url, request_id)
    drawn = samples(db_url, [o.id for o in outputs])
    assert set(drawn) == {o.id for o in outputs if o.action.value == "release"}


def test_the_draw_follows_the_output_id(make_gateway: Callable[..., ServerThread], db_url: str) -> None:
    half = make_gateway(Action.MASK, **qa("test-mask", 0.5))
    ids: list[str] = []
    for _ in range(4):
        request_id, _ = call(half)
        ids += [o.id for o in rows_for(db_url, request_id)[1]]
    drawn = samples(db_url, ids)
    assert set(drawn) == {i for i in ids if draw_value(i) < 0.5}
    assert 0 < len(drawn) < len(ids)  # 16 ids: all in or all out would be a 2 in 65536 chance


def test_a_rate_for_an_unknown_policy_stops_serve(make_gateway: Callable[..., ServerThread]) -> None:
    server = make_gateway(Action.MASK)
    with pytest.raises(StartupError, match=r"review\.qa names policies this gateway does not have: nope"):
        qa_sample_rates(Settings(**qa("nope", 0.1)), server.components.moderator)  # type: ignore[arg-type]
