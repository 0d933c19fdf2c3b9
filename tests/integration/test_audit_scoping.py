"""Who reads which audit events: a tenant's `audit` key its own tenant's, the operator's `audit:all` key
everyone's; and what no audit event carries: generated text, a streamed prefix, a hash of withheld text."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator

import grpc
import pytest
from google.protobuf.json_format import MessageToDict
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.api.v1 import audit_pb2 as au_pb
from gateway.api.v1 import audit_pb2_grpc as au_grpc
from gateway.client import GatewayClient, action_name
from gateway.storage.engine import make_engine
from gateway.storage.models import GenerationOutput, GenerationRequest
from moderation.types import Action
from tests.integration.conftest import FLAG_SEED, FLAG_TOKENS, PROMPT
from tests.integration.gateway_harness import ServerThread
from tests.integration.keys import make_keys

# What a moderation.decided event may say: ids, the policy and the scores, never text (and, to a tenant's
# auditor, for a withheld output, which of the scores it does not say: test_audit_withheld_facts.py).
DECIDED_FIELDS = {"output", "policy", "policy_version", "scorers", "scores", "reasons"} | {
    "identity_checks",
    "shadow",
    "redacted",
}


@pytest.fixture(scope="module")
def server(make_gateway: Callable[..., ServerThread]) -> ServerThread:
    return make_gateway(Action.HOLD, insecure_no_auth=False)


@pytest.fixture(scope="module")
def keys(db_url: str) -> dict[str, str]:
    return make_keys(
        db_url,
        {
            "acme": {"tenant": "scoping-acme", "scopes": ["generate"]},
            "globex": {"tenant": "scoping-globex", "scopes": ["generate"]},
            "acme-auditor": {"tenant": "scoping-acme", "scopes": ["audit"]},
            "operator": {"tenant": "ops", "scopes": ["audit:all"]},
        },
    )


@pytest.fixture(scope="module")
def audit(server: ServerThread) -> Iterator[au_grpc.AuditServiceStub]:
    with grpc.insecure_channel(server.address) as channel:
        yield au_grpc.AuditServiceStub(channel)


def md(key: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {key}"),)


def held_ticket(server: ServerThread, key: str) -> str:
    with GatewayClient(server.address, api_key=key) as client:
        out = client.generate(PROMPT, max_new_tokens=FLAG_TOKENS, seed=FLAG_SEED).outputs[0]
    assert action_name(out.moderation.action) == "HELD"
    return out.ticket


def test_a_tenant_audit_key_reads_its_own_tenant_only(
    server: ServerThread, audit: au_grpc.AuditServiceStub, keys: dict[str, str]
) -> None:
    mine, theirs = held_ticket(server, keys["acme"]), held_ticket(server, keys["globex"])
    auditor = md(keys["acme-auditor"])
    everything = list(audit.Query(au_pb.AuditQuery(limit=1000), metadata=auditor))
    assert everything and {e.tenant for e in everything} == {"scoping-acme"}
    assert any(e.ticket == mine for e in everything)
    assert list(audit.Query(au_pb.AuditQuery(ticket=theirs), metadata=auditor)) == []
    assert list(audit.Query(au_pb.AuditQuery(ticket=mine), metadata=auditor))
    with pytest.raises(grpc.RpcError) as info:
        list(audit.Query(au_pb.AuditQuery(tenant="scoping-globex"), metadata=auditor))
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "audit:all" in info.value.details()
    with pytest.raises(grpc.RpcError) as info:
        audit.Verify(au_pb.VerifyRequest(), metadata=auditor)
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_the_operator_scope_reads_every_tenant_and_verifies(
    server: ServerThread, audit: au_grpc.AuditServiceStub, keys: dict[str, str]
) -> None:
    theirs = held_ticket(server, keys["globex"])
    operator = md(keys["operator"])
    events = list(audit.Query(au_pb.AuditQuery(ticket=theirs), metadata=operator))
    assert events and {e.tenant for e in events} == {"scoping-globex"}
    assert list(audit.Query(au_pb.AuditQuery(tenant="scoping-acme", limit=5), metadata=operator))
    assert audit.Verify(au_pb.VerifyRequest(), metadata=operator).ok


def test_without_authentication_the_audit_log_is_closed(make_gateway: Callable[..., ServerThread]) -> None:
    insecure = make_gateway(Action.HOLD)  # --insecure-no-auth
    with grpc.insecure_channel(insecure.address) as channel, pytest.raises(grpc.RpcError) as info:
        list(au_grpc.AuditServiceStub(channel).Query(au_pb.AuditQuery()))
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_audit_events_carry_no_generated_text_nor_its_hash(
    server: ServerThread, audit: au_grpc.AuditServiceStub, keys: dict[str, str], db_url: str
) -> None:
    """A held stream: neither the withheld text, nor a hash of it, nor the prefix the stream released
    (it is kept with the output, not in the log) is in any event of the request."""
    with GatewayClient(server.address, api_key=keys["acme"]) as client:
        messages = list(client.generate_stream(PROMPT, max_new_tokens=FLAG_TOKENS, seed=FLAG_SEED))
    assert messages[-1].final.ticket, "held"
    request_id = messages[0].start.request_id
    engine = make_engine(db_url)
    with Session(engine) as s:
        withheld = s.scalars(
            select(GenerationOutput.generated_text)
            .join(GenerationRequest)
            .where(GenerationRequest.request_id == request_id)
        ).one()
    engine.dispose()
    events = list(audit.Query(au_pb.AuditQuery(request_id=request_id), metadata=md(keys["acme-auditor"])))
    assert {e.event_type for e in events} >= {"request.received", "moderation.decided", "review.held"}
    [decided] = [e for e in events if e.event_type == "moderation.decided"]
    assert set(MessageToDict(decided.payload)) <= DECIDED_FIELDS
    recorded = json.dumps([MessageToDict(e.payload) for e in events])
    for secret in (withheld, hashlib.sha256(withheld.encode()).hexdigest()):
        assert secret not in recorded
