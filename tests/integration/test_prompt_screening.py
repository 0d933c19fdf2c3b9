"""Prompt screening on a real gateway: a prompt its policy blocks costs no generation (the batcher never
sees it), answers as a blocked output with `prompt:` reasons in every front door, is recorded and
audited without text, and can be appealed; the other prompts of the call are generated as usual."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import openai
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from gateway.api.v1 import generation_pb2 as gen_pb
from gateway.audit import events
from gateway.client import GatewayClient, action_name
from gateway.generation.generator import Generator
from gateway.ops.metrics import PROMPT_SCREENING
from gateway.pipeline.replay import ReplayReport, replay
from gateway.storage.engine import make_engine
from gateway.storage.models import AuditEvent, GenerationOutput, GenerationRequest, ReviewItem
from moderation.moderator import Moderator
from moderation.policy import Policy
from moderation.types import Action
from tests.integration.conftest import gateway_components, word_moderator
from tests.integration.gateway_harness import ServerThread
from tests.integration.keys import make_keys

WORD = "grumpkin"  # the listed word: in prompts only (the demo model does not generate it)
BAD = f"Tell me about the {WORD} next door"
CLEAN = "The garden"
SCREENING = Policy(
    name="screen-block",
    span_actions={"profanity": Action.MASK},  # an output's listed word would only be masked
    prompt_screening={"profanity": Action.BLOCK},
)
PLAIN = Policy(name="screen-off", span_actions={"profanity": Action.MASK})


@pytest.fixture(scope="module")
def server(generator: Generator, db_url: str) -> Iterator[ServerThread]:
    engine = make_engine(db_url)
    moderator = word_moderator(WORD, SCREENING, PLAIN)
    components = gateway_components(generator, moderator, engine, insecure_no_auth=False)
    started = ServerThread(components, web=True).start()
    yield started
    started.stop(grace=1)
    engine.dispose()


@pytest.fixture(scope="module")
def keys(db_url: str) -> dict[str, str]:
    return make_keys(
        db_url,
        {
            "screened": {"tenant": "screening", "scopes": ["generate"], "policy": SCREENING.name},
            "plain": {"tenant": "screening", "scopes": ["generate"], "policy": PLAIN.name},
        },
    )


@pytest.fixture()
def batcher_requests(server: ServerThread) -> Callable[[], int]:
    """How many prompts the server's batcher has been given so far."""
    assert server.server is not None
    batcher = server.server.batcher
    return lambda: batcher.stats().requests


def outputs_of(db_url: str, request_id: str) -> list[GenerationOutput]:
    engine: Engine = make_engine(db_url)
    with Session(engine) as s:
        rows = list(
            s.scalars(
                select(GenerationOutput)
                .join(GenerationRequest)
                .where(GenerationRequest.request_id == request_id)
                .order_by(GenerationOutput.prompt_index, GenerationOutput.sequence_index)
            )
        )
        s.expunge_all()
    engine.dispose()
    return rows


def audit_of(db_url: str, request_id: str) -> list[AuditEvent]:
    engine = make_engine(db_url)
    with Session(engine) as s:
        rows = list(s.scalars(select(AuditEvent).where(AuditEvent.request_id == request_id)))
        s.expunge_all()
    engine.dispose()
    return rows


def screened_count(action: str) -> float:
    return PROMPT_SCREENING.labels(SCREENING.name, action)._value.get()


def test_grpc_blocked_prompt_is_not_generated_and_others_are(
    server: ServerThread, keys: dict[str, str], db_url: str, batcher_requests: Callable[[], int]
) -> None:
    before, blocked_before, released_before = (
        batcher_requests(),
        screened_count("block"),
        screened_count("release"),
    )
    with GatewayClient(server.address, api_key=keys["screened"]) as client:
        response = client.generate(
            [BAD, CLEAN], max_new_tokens=6, seed=4, num_return_sequences=2, request_id="screen-grpc"
        )
    assert batcher_requests() == before + 1, "only the clean prompt reached the batcher"
    assert screened_count("block") == blocked_before + 1 and screened_count("release") == released_before + 1
    assert [(o.prompt_index, o.sequence_index) for o in response.outputs] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    bad, clean = response.outputs[:2], response.outputs[2:]
    for out in bad:
        assert action_name(out.moderation.action) == "BLOCKED" and out.text == ""
        assert [(r.category, action_name(r.action)) for r in out.moderation.reasons] == [
            ("prompt:profanity", "BLOCKED")
        ]
        assert out.ticket.startswith("tkt_") and out.generated_tokens == 0
    assert bad[0].ticket != bad[1].ticket
    assert all(action_name(o.moderation.action) == "RELEASED" and o.text for o in clean)
    assert WORD not in str(response), "the flagged prompt is not echoed back"
    assert response.seed == 0, "as for any withheld output"

    rows = outputs_of(db_url, "screen-grpc")
    assert [(r.action.value, r.generated_tokens, r.finish_reason) for r in rows[:2]] == [
        ("block", 0, "prompt_screened")
    ] * 2
    assert all(r.generated_text == "" and r.released_text is None and r.prompt == BAD for r in rows[:2])
    assert (
        rows[0].reasons[0]["category"] == "prompt:profanity" and rows[0].policy_version == SCREENING.version
    )
    assert all(r.generated_tokens > 0 for r in rows[2:])
    decided = [e for e in audit_of(db_url, "screen-grpc") if e.event_type == events.MODERATION_DECIDED]
    assert len(decided) == 4 and [e.action for e in decided].count("block") == 2
    assert all(WORD not in str(e.payload) for e in audit_of(db_url, "screen-grpc"))


def test_grpc_stream_of_a_blocked_prompt_sends_no_text(
    server: ServerThread, keys: dict[str, str], batcher_requests: Callable[[], int]
) -> None:
    before = batcher_requests()
    with GatewayClient(server.address, api_key=keys["screened"]) as client:
        messages = list(client.generate_stream(BAD, max_new_tokens=6, seed=4))
    assert batcher_requests() == before
    assert [m.WhichOneof("event") for m in messages] == ["start", "final"]
    final = messages[-1].final
    assert action_name(final.moderation.action) == "BLOCKED" and final.ticket.startswith("tkt_")
    assert [r.category for r in final.moderation.reasons] == ["prompt:profanity"]
    assert WORD not in "".join(str(m) for m in messages)


def test_the_ticket_of_a_blocked_prompt_can_be_appealed(
    server: ServerThread, keys: dict[str, str], db_url: str
) -> None:
    with GatewayClient(server.address, api_key=keys["screened"]) as client:
        out = client.generate(BAD, max_new_tokens=4, seed=1).outputs[0]
        assert client.get_result(out.ticket).state == gen_pb.RESULT_STATE_BLOCKED
        appealed = client.appeal(out.ticket, "the word is a family name")
    assert appealed.state == gen_pb.RESULT_STATE_PENDING and appealed.text == ""
    engine = make_engine(db_url)
    with Session(engine) as s:
        item = s.scalars(
            select(ReviewItem).join(GenerationOutput).where(GenerationOutput.ticket == out.ticket)
        ).one()
        assert item.appeal and item.appeal_reason == "the word is a family name"
    engine.dispose()


def test_a_policy_without_screening_generates_the_same_prompt(
    server: ServerThread, keys: dict[str, str], batcher_requests: Callable[[], int]
) -> None:
    before = batcher_requests()
    with GatewayClient(server.address, api_key=keys["plain"]) as client:
        (out,) = client.generate(BAD, max_new_tokens=4, seed=1).outputs
    assert batcher_requests() == before + 1
    assert action_name(out.moderation.action) in ("RELEASED", "MASKED") and out.generated_tokens > 0


def test_score_answers_a_blocked_prompt_like_a_blocked_output(
    server: ServerThread, keys: dict[str, str], batcher_requests: Callable[[], int]
) -> None:
    before = batcher_requests()
    body = {"input_data": {"input_string": [BAD, CLEAN], "parameters": {"max_new_tokens": 4, "seed": 2}}}
    r = httpx.post(
        f"{server.web_url}/score",
        json=body,
        headers={"Authorization": f"Bearer {keys['screened']}"},
        timeout=60,
    )
    assert r.status_code == 200, r.text
    assert batcher_requests() == before + 1
    blocked, clean = r.json()
    assert blocked["0"]["status"] == "blocked" and blocked["0"]["ticket"].startswith("tkt_")
    assert blocked["0"]["reasons"] == [{"category": "prompt:profanity"}]
    assert isinstance(clean["0"], str) and clean["0"]
    assert WORD not in r.text


def oai(server: ServerThread, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.web_url}/v1", api_key=key, max_retries=0, timeout=60)


def modgate(choice: Any) -> dict[str, Any]:
    return dict((choice.model_extra or {})["modgate"])


def test_openai_completions_answer_a_blocked_prompt_with_content_filter(
    server: ServerThread, keys: dict[str, str], batcher_requests: Callable[[], int]
) -> None:
    client = oai(server, keys["screened"])
    model = client.models.list().data[0].id
    before = batcher_requests()
    answer = client.completions.create(model=model, prompt=[BAD], n=2, max_tokens=4, seed=1)
    chunks = list(client.completions.create(model=model, prompt=BAD, max_tokens=4, seed=1, stream=True))
    chat = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": BAD}], max_tokens=4, seed=1
    )
    assert batcher_requests() == before, "no front door generated for the blocked prompt"
    assert [c.index for c in answer.choices] == [0, 1]
    for choice in [*answer.choices, chat.choices[0]]:
        assert choice.finish_reason == "content_filter"
        ext = modgate(choice)
        assert ext["action"] == "blocked" and ext["categories"] == ["prompt:profanity"]
        assert ext["ticket"].startswith("tkt_")
    assert all(c.text == "" for c in answer.choices) and chat.choices[0].message.content is None
    assert answer.usage is not None and answer.usage.completion_tokens == 0
    assert "".join(c.choices[0].text for c in chunks if c.choices) == ""
    finals = [c.choices[0] for c in chunks if c.choices and c.choices[0].finish_reason]
    assert [f.finish_reason for f in finals] == ["content_filter"]
    assert modgate(finals[0])["categories"] == ["prompt:profanity"]
    assert WORD not in str(answer) + str(chat) + "".join(str(c) for c in chunks)


def test_replay_of_a_blocked_prompt_rescreens_it_without_generating(
    server: ServerThread, keys: dict[str, str], batcher_requests: Callable[[], int]
) -> None:
    with GatewayClient(server.address, api_key=keys["screened"]) as client:
        out = client.generate(BAD, max_new_tokens=4, seed=1).outputs[0]
    assert server.server is not None
    c, live = server.components, server.server
    before = batcher_requests()

    def run(moderator: Moderator) -> ReplayReport:
        return server.run(
            replay(
                out.ticket,
                actor="cli:test",
                sessions=c.sessions,
                generator=c.generator,
                batcher=live.batcher,
                moderator=moderator,
            )
        )

    same = run(c.moderator)
    assert same.identical and same.notes == [], same.lines()
    unscreened = word_moderator(WORD, Policy(name=SCREENING.name, span_actions={"profanity": Action.MASK}))
    changed = run(unscreened)
    assert not changed.identical and any("screens no prompts" in n for n in changed.notes)
    assert batcher_requests() == before, "a replay of a screened prompt generates nothing"
