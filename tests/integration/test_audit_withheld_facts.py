"""What Audit.Query tells a tenant's own `audit` key about a withheld output: what its client was told
(held, the ticket, which rules fired) and nothing measured on the text; no seed, token counts, finish
reason, scores, thresholds or priority, and no hash that would confirm a guess of them. The operator's
`audit:all` key reads the events as stored, the seed exact (a Struct's numbers are doubles)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from google.protobuf.json_format import MessageToDict
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.api.v1 import audit_pb2 as au_pb
from gateway.api.v1 import audit_pb2_grpc as au_grpc
from gateway.client import GatewayClient, action_name
from gateway.generation.generator import Generator
from gateway.generation.params import MAX_SEED
from gateway.storage.engine import make_engine
from gateway.storage.models import GenerationRequest
from moderation.policy import Policy
from moderation.types import Action
from tests.integration.conftest import gateway_components, word_moderator
from tests.integration.gateway_harness import ServerThread
from tests.integration.keys import make_keys

TENANT = "facts-acme"
FACT_EVENTS = ("request.received", "generation.completed", "moderation.decided", "review.held")


@pytest.fixture(scope="module")
def holding(generator: Generator, db_url: str, flag_word: str) -> Iterator[ServerThread]:
    """Every output held for review (review_all): a held output whatever seed the server draws."""
    engine = make_engine(db_url)
    review_all = Policy(name="facts-review-all", review_all=True, span_actions={"profanity": Action.HOLD})
    moderator = word_moderator(flag_word, review_all)
    server = ServerThread(gateway_components(generator, moderator, engine, insecure_no_auth=False)).start()
    yield server
    server.stop(grace=1)
    engine.dispose()


@pytest.fixture(scope="module")
def releasing(make_gateway: Callable[..., ServerThread]) -> ServerThread:
    return make_gateway(Action.MASK, insecure_no_auth=False)


@pytest.fixture(scope="module")
def keys(db_url: str) -> dict[str, str]:
    return make_keys(
        db_url,
        {
            "client": {"tenant": TENANT, "scopes": ["generate"]},
            "auditor": {"tenant": TENANT, "scopes": ["audit"]},
            "operator": {"tenant": "facts-ops", "scopes": ["audit:all"]},
        },
    )


def query(server: ServerThread, key: str, **fields: Any) -> list[au_pb.AuditEvent]:
    with grpc.insecure_channel(server.address) as channel:
        stub = au_grpc.AuditServiceStub(channel)
        return list(stub.Query(au_pb.AuditQuery(**fields), metadata=(("authorization", f"Bearer {key}"),)))


def by_type(events: list[au_pb.AuditEvent]) -> dict[str, dict[str, Any]]:
    return {e.event_type: MessageToDict(e.payload) for e in events}


def stored_seed(db_url: str, request_id: str) -> int:
    engine = make_engine(db_url)
    with Session(engine) as s:
        parameters = s.scalars(
            select(GenerationRequest.parameters).where(GenerationRequest.request_id == request_id)
        ).one()
    engine.dispose()
    return int(parameters["seed"])


@pytest.fixture(scope="module")
def held(holding: ServerThread, keys: dict[str, str]) -> str:
    """The request id of a held output whose seed the server drew."""
    with GatewayClient(holding.address, api_key=keys["client"]) as client:
        response = client.generate("The garden", max_new_tokens=4)
        (out,) = response.outputs
        assert action_name(out.moderation.action) == "HELD" and response.seed == 0
        client.get_result(out.ticket)  # a result.read event, after the facts: nothing to hide in it
    return response.request_id


def test_a_tenant_auditor_reads_no_facts_of_a_withheld_output(
    holding: ServerThread, keys: dict[str, str], held: str, db_url: str
) -> None:
    events = query(holding, keys["auditor"], request_id=held)
    payloads = by_type(events)
    assert set(FACT_EVENTS) <= set(payloads)
    received = payloads["request.received"]
    assert "seed" not in received and "seed" not in received["parameters"]
    assert received["redacted"] == ["seed", "parameters.seed"]
    assert received["parameters"]["max_new_tokens"] == 4  # what the client asked stays
    completed = payloads["generation.completed"]
    assert not {"generated_tokens", "finish_reason", "prompt_tokens"} & set(completed)
    decided = payloads["moderation.decided"]
    assert not {"scores", "identity_checks", "shadow"} & set(decided)
    assert decided["reasons"] and all(set(r) == {"category", "action", "scorer"} for r in decided["reasons"])
    assert "priority" not in payloads["review.held"] and payloads["review.held"]["escalated"] is False
    seed = str(stored_seed(db_url, held))
    assert seed not in str([MessageToDict(e) for e in events])


def test_no_hash_of_a_redacted_event_reaches_the_tenant(
    holding: ServerThread, keys: dict[str, str], held: str
) -> None:
    """The hash covers the payload: with it, the few possible token counts and finish reasons could be
    tried until one matches. Not as `hash`, nor as the next event's `prev_hash`, also across pages."""
    stored = query(holding, keys["operator"], request_id=held)
    redacted = {e.hash for e in stored if e.event_type in FACT_EVENTS}
    whole = query(holding, keys["auditor"], request_id=held)
    paged, after = [], 0
    while page := query(holding, keys["auditor"], request_id=held, limit=1, after_id=after):
        paged += page
        after = page[-1].id
    assert [e.id for e in paged] == [e.id for e in whole] == [e.id for e in stored]
    for answer in (whole, paged):
        shown = {e.hash for e in answer} | {e.prev_hash for e in answer}
        assert not redacted & shown
        assert all(e.hash == "" for e in answer if e.event_type in FACT_EVENTS)
        assert any(e.hash for e in answer), "events with nothing to hide keep their hash"


def test_the_operator_reads_every_fact_and_the_exact_seed(
    holding: ServerThread, keys: dict[str, str], held: str, db_url: str
) -> None:
    payloads = by_type(query(holding, keys["operator"], request_id=held))
    seed = stored_seed(db_url, held)
    assert payloads["request.received"]["seed"] == str(seed)
    assert payloads["request.received"]["parameters"]["seed"] == str(seed)
    assert "redacted" not in payloads["request.received"]
    assert payloads["generation.completed"]["generated_tokens"] > 0
    assert payloads["generation.completed"]["finish_reason"]
    assert "scores" in payloads["moderation.decided"]
    assert all({"score", "threshold"} <= set(r) for r in payloads["moderation.decided"]["reasons"])
    assert "priority" in payloads["review.held"]


def test_a_released_output_keeps_its_facts_for_the_tenant_and_a_large_seed_is_exact(
    releasing: ServerThread, keys: dict[str, str]
) -> None:
    seed = MAX_SEED - 1  # 2**63 - 2: a double would round it to 2**63
    with GatewayClient(releasing.address, api_key=keys["client"]) as client:
        response = client.generate("The garden", max_new_tokens=3, seed=seed)
    assert action_name(response.outputs[0].moderation.action) in {"RELEASED", "MASKED"}
    for key in ("auditor", "operator"):
        events = query(releasing, keys[key], request_id=response.request_id)
        payloads = by_type(events)
        assert payloads["request.received"]["seed"] == str(seed) == "9223372036854775806"
        assert payloads["request.received"]["parameters"]["seed"] == str(seed)
        assert payloads["generation.completed"]["generated_tokens"] > 0
        assert "scores" in payloads["moderation.decided"]
        assert all(e.hash for e in events)
