"""Held prompts end to end on a real gateway: the client gets a ticket at once and nothing is generated;
the item is a prompt item in the queue; approval (gRPC or the web queue) runs the generation through the
prompt-run worker and the ticket's result shows its moderated outcome; rejection is final; an approval
whose generation never ran (no worker, a crash) is picked up by the next server that runs one."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from datetime import timedelta

import grpc
import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.api.v1 import generation_pb2 as gen_pb
from gateway.api.v1 import review_pb2 as rv_pb
from gateway.api.v1 import review_pb2_grpc as rv_grpc
from gateway.audit import events
from gateway.client import GatewayClient, action_name
from gateway.generation.generator import Generator
from gateway.review.prompt_runs import claim_due
from gateway.storage.base import utcnow
from gateway.storage.engine import make_engine
from gateway.storage.models import AuditEvent, GenerationOutput, PromptRun, PromptRunState
from moderation.moderator import Moderator
from moderation.policy import Policy
from moderation.types import Action
from tests.browser.support import csrf_of
from tests.integration.conftest import gateway_components, word_moderator
from tests.integration.gateway_harness import ServerThread
from tests.integration.keys import REVIEWER_PASSWORD, make_keys

WORD = "grumpkin"
BAD = f"Tell me about the {WORD} next door"
HOLD = Policy(
    name="screen-hold", span_actions={"profanity": Action.MASK}, prompt_screening={"profanity": Action.HOLD}
)
# Every output is held too: the approved prompt's generation goes to review again.
HOLD_ALL = Policy(
    name="screen-hold-all",
    span_actions={"profanity": Action.MASK},
    prompt_screening={"profanity": Action.HOLD},
    review_all=True,
)


def moderator() -> Moderator:
    return word_moderator(WORD, HOLD, HOLD_ALL)


@pytest.fixture(scope="module")
def start(generator: Generator, db_url: str) -> Iterator[Callable[..., ServerThread]]:
    engine = make_engine(db_url)
    started: list[ServerThread] = []

    def make(*, prompt_runs: bool = True) -> ServerThread:
        components = gateway_components(
            generator,
            moderator(),
            engine,
            insecure_no_auth=False,
            prompt_runs=prompt_runs,
            prompt_run_poll_interval_s=0.1,
        )
        server = ServerThread(components, web=True).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop(grace=1)
    engine.dispose()


@pytest.fixture(scope="module")
def server(start: Callable[..., ServerThread]) -> ServerThread:
    return start()


@pytest.fixture(scope="module")
def keys(db_url: str) -> dict[str, str]:
    return make_keys(
        db_url,
        {
            "client": {"tenant": "held-prompts", "scopes": ["generate"], "policy": HOLD.name},
            "all": {"tenant": "held-prompts", "scopes": ["generate"], "policy": HOLD_ALL.name},
            "pia": {"tenant": "staff", "scopes": ["review"], "reviewer": "pia"},
        },
        reviewers=["pia"],
    )


def md(key: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {key}"),)


def hold_prompt(server: ServerThread, key: str) -> gen_pb.Output:
    assert server.server is not None
    before = server.server.batcher.stats().requests
    with GatewayClient(server.address, api_key=key) as client:
        (out,) = client.generate(BAD, max_new_tokens=6, seed=7).outputs
    assert server.server.batcher.stats().requests == before, "a held prompt is not generated"
    assert action_name(out.moderation.action) == "HELD" and out.ticket.startswith("tkt_") and out.text == ""
    assert [r.category for r in out.moderation.reasons] == ["prompt:profanity"]
    return out


def claim(server: ServerThread, key: str, ticket: str) -> rv_pb.ReviewItem:
    """Claims items until it holds the one behind `ticket` (other tests' items are rejected)."""
    with grpc.insecure_channel(server.address) as channel:
        stub = rv_grpc.ReviewServiceStub(channel)
        for _ in range(100):
            reply = stub.ClaimNext(rv_pb.ClaimNextRequest(lease_seconds=60), metadata=md(key))
            assert reply.HasField("item"), f"ticket {ticket} never came up"
            if reply.item.ticket == ticket:
                return reply.item
            decide(server, key, reply.item, rv_pb.REVIEW_DECISION_REJECT, reason="not this test's")
    raise AssertionError("queue did not drain")


def decide(
    server: ServerThread, key: str, item: rv_pb.ReviewItem, decision: int, **fields: str
) -> rv_pb.ReviewItem:
    with grpc.insecure_channel(server.address) as channel:
        return rv_grpc.ReviewServiceStub(channel).Decide(
            rv_pb.DecideRequest(item_id=item.id, expected_version=item.version, decision=decision, **fields),  # type: ignore[arg-type]
            metadata=md(key),
        )


def watch_until_decided(server: ServerThread, key: str, ticket: str) -> list[gen_pb.Result]:
    with GatewayClient(server.address, api_key=key) as client:
        return list(client.watch_result(ticket, timeout=60))


def run_of(db_url: str, ticket: str) -> PromptRun | None:
    engine = make_engine(db_url)
    with Session(engine) as s:
        run = s.scalars(
            select(PromptRun)
            .join(GenerationOutput, GenerationOutput.id == PromptRun.output_id)
            .where(GenerationOutput.ticket == ticket)
        ).one_or_none()
        s.expunge_all()
    engine.dispose()
    return run


def test_approval_runs_the_generation_and_watch_gets_its_outcome(
    server: ServerThread, keys: dict[str, str], db_url: str
) -> None:
    out = hold_prompt(server, keys["client"])
    with GatewayClient(server.address, api_key=keys["client"]) as client:
        assert client.get_result(out.ticket).state == gen_pb.RESULT_STATE_PENDING
    item = claim(server, keys["pia"], out.ticket)
    assert item.prompt_item and item.prompt == BAD and item.generated_text == ""
    with pytest.raises(grpc.RpcError) as refused:  # a prompt is approved or rejected, not edited
        decide(server, keys["pia"], item, rv_pb.REVIEW_DECISION_EDIT, edited_text="something else")
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not edited" in (refused.value.details() or "")
    assert server.server is not None
    before = server.server.batcher.stats().requests
    decide(server, keys["pia"], item, rv_pb.REVIEW_DECISION_APPROVE)

    results = watch_until_decided(server, keys["client"], out.ticket)
    final = results[-1]
    assert final.state == gen_pb.RESULT_STATE_APPROVED and final.text, [str(r) for r in results]
    assert all(r.state == gen_pb.RESULT_STATE_PENDING and not r.text for r in results[:-1])
    assert server.server.batcher.stats().requests == before + 1, "the approval ran exactly one generation"
    run = run_of(db_url, out.ticket)
    assert run is not None and run.state is PromptRunState.DONE and run.generation_request_id
    engine = make_engine(db_url)
    with Session(engine) as s:
        generated = s.scalars(
            select(GenerationOutput).where(
                GenerationOutput.generation_request_id == run.generation_request_id
            )
        ).one()
        assert generated.released_text == final.text and generated.generated_tokens > 0
        assert generated.prompt == BAD and generated.finish_reason != "prompt_screened"
        linked = s.scalars(
            select(AuditEvent).where(
                AuditEvent.ticket == out.ticket, AuditEvent.event_type == events.PROMPT_GENERATED
            )
        ).one()
        assert linked.payload["generation_request"] == run.generation_request_id
        released = s.scalars(
            select(AuditEvent).where(
                AuditEvent.ticket == out.ticket, AuditEvent.event_type == events.RESULT_RELEASED
            )
        ).all()
        assert released == [], "approving a prompt released nothing by itself"
    engine.dispose()


def test_rejection_is_final_and_generates_nothing(
    server: ServerThread, keys: dict[str, str], db_url: str
) -> None:
    out = hold_prompt(server, keys["client"])
    item = claim(server, keys["pia"], out.ticket)
    assert server.server is not None
    before = server.server.batcher.stats().requests
    decide(server, keys["pia"], item, rv_pb.REVIEW_DECISION_REJECT, reason="abusive")
    (result,) = watch_until_decided(server, keys["client"], out.ticket)
    assert result.state == gen_pb.RESULT_STATE_REJECTED and result.text == ""
    time.sleep(0.5)  # a few worker polls: nothing is generated for a rejected prompt
    assert run_of(db_url, out.ticket) is None
    assert server.server.batcher.stats().requests == before


def test_a_generation_held_again_is_reviewed_before_the_ticket_shows_it(
    server: ServerThread, keys: dict[str, str], db_url: str
) -> None:
    out = hold_prompt(server, keys["all"])
    decide(server, keys["pia"], claim(server, keys["pia"], out.ticket), rv_pb.REVIEW_DECISION_APPROVE)
    for _ in range(300):  # the worker runs the generation; under review_all it is held again
        run = run_of(db_url, out.ticket)
        if run is not None and run.state is PromptRunState.DONE:
            break
        time.sleep(0.1)
    else:
        raise AssertionError("the approved prompt never ran")
    with GatewayClient(server.address, api_key=keys["all"]) as client:
        assert client.get_result(out.ticket).state == gen_pb.RESULT_STATE_PENDING
    engine = make_engine(db_url)
    with Session(engine) as s:
        second = s.scalars(
            select(GenerationOutput.ticket).where(
                GenerationOutput.generation_request_id == run.generation_request_id
            )
        ).one()
    engine.dispose()
    assert second and second != out.ticket
    item = claim(server, keys["pia"], second)
    assert not item.prompt_item and item.generated_text
    decide(server, keys["pia"], item, rv_pb.REVIEW_DECISION_EDIT, edited_text="a reviewed answer")
    with GatewayClient(server.address, api_key=keys["all"]) as client:
        result = client.get_result(out.ticket)
    assert result.state == gen_pb.RESULT_STATE_EDITED and result.text == "a reviewed answer"


def test_the_web_queue_marks_a_prompt_item_and_approves_it(
    server: ServerThread, keys: dict[str, str]
) -> None:
    out = hold_prompt(server, keys["client"])
    with httpx.Client(base_url=server.web_url, follow_redirects=False, timeout=30) as web:
        token = csrf_of(web.get("/login").text)
        login = web.post(
            "/login", data={"username": "pia", "password": REVIEWER_PASSWORD, "csrf_token": token}
        )
        assert login.status_code == 303, login.text
        queue = web.get("/queue").text
        assert 'class="badge state-prompt"' in queue  # rows show ids, not tickets
        for _ in range(100):
            reply = web.post("/queue/claim", data={"csrf_token": csrf_of(queue)})
            assert reply.status_code == 303, reply.text
            page = web.get(reply.headers["location"]).text
            version = re.search(r'name="version" value="(\d+)"', page)
            assert version is not None
            form = {"csrf_token": csrf_of(page), "version": version.group(1)}
            if out.ticket in page:
                break
            web.post(
                f"{reply.headers['location']}/decide", data={**form, "decision": "reject", "reason": "other"}
            )
        else:
            raise AssertionError("the prompt item never came up")
        assert 'id="prompt-banner"' in page and 'id="prompt-badge"' in page
        assert 'id="edit-form"' not in page and 'id="output-text"' not in page
        assert BAD in page
        done = web.post(f"{reply.headers['location']}/decide", data={**form, "decision": "approve"})
        assert done.status_code == 303, done.text
    results = watch_until_decided(server, keys["client"], out.ticket)
    assert results[-1].state == gen_pb.RESULT_STATE_APPROVED and results[-1].text


def test_an_approval_with_no_worker_running_is_generated_after_restart(
    start: Callable[..., ServerThread], server: ServerThread, keys: dict[str, str], db_url: str
) -> None:
    server.stop(grace=1)  # last in this module: no worker may run while the approval waits
    first = start(prompt_runs=False)  # approves, but runs no worker: as if it crashed after deciding
    out = hold_prompt(first, keys["client"])
    decide(first, keys["pia"], claim(first, keys["pia"], out.ticket), rv_pb.REVIEW_DECISION_APPROVE)
    run = run_of(db_url, out.ticket)
    assert run is not None and run.state is PromptRunState.PENDING
    with GatewayClient(first.address, api_key=keys["client"]) as client:
        assert client.get_result(out.ticket).state == gen_pb.RESULT_STATE_PENDING
    first.stop(grace=1)
    engine = make_engine(db_url)  # a worker claims the run and dies before recording its outcome
    with Session(engine) as s, s.begin():
        (claimed,) = claim_due(session=s, now=utcnow(), limit=10, lease=timedelta(seconds=1))
    engine.dispose()
    assert claimed.ticket == out.ticket

    second = start()  # the next server (a restart, or another replica) picks the run up once the lease ends
    results = watch_until_decided(second, keys["client"], out.ticket)
    assert results[-1].state == gen_pb.RESULT_STATE_APPROVED and results[-1].text
    run = run_of(db_url, out.ticket)
    assert run is not None and run.state is PromptRunState.DONE and run.attempts == 2
