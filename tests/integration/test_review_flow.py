"""The whole review path through gRPC: a held output is claimed and decided by a programmatic reviewer,
and the client receives the text only after approval (or edit), never after rejection."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import grpc
import pytest

from gateway.api.v1 import audit_pb2 as au_pb
from gateway.api.v1 import audit_pb2_grpc as au_grpc
from gateway.api.v1 import generation_pb2 as gen_pb
from gateway.api.v1 import generation_pb2_grpc as gen_grpc
from gateway.api.v1 import review_pb2 as rv_pb
from gateway.api.v1 import review_pb2_grpc as rv_grpc
from gateway.client import GatewayClient, action_name
from moderation.types import Action
from tests.integration.conftest import FLAG_SEED, FLAG_TOKENS, PROMPT
from tests.integration.gateway_harness import ServerThread
from tests.integration.keys import make_keys


@pytest.fixture(scope="module")
def server(make_gateway: Callable[..., ServerThread]) -> ServerThread:
    return make_gateway(Action.HOLD, insecure_no_auth=False)


@pytest.fixture(scope="module")
def keys(db_url: str) -> dict[str, str]:
    return make_keys(
        db_url,
        {
            "client": {"tenant": "acme", "scopes": ["generate"]},
            "blocked-client": {"tenant": "acme", "scopes": ["generate"], "policy": "test-block"},
            "other": {"tenant": "globex", "scopes": ["generate"]},
            "rita": {"tenant": "staff", "scopes": ["review"], "reviewer": "rita"},
            "ravi": {"tenant": "staff", "scopes": ["review"], "reviewer": "ravi"},
            "auditor": {"tenant": "staff", "scopes": ["audit:all"]},
        },
        reviewers=["rita", "ravi"],
    )


def md(key: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {key}"),)


@pytest.fixture(scope="module")
def channel(server: ServerThread) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(server.address) as ch:
        yield ch


def hold_one(server: ServerThread, key: str, seed: int = FLAG_SEED) -> gen_pb.Output:
    with GatewayClient(server.address, api_key=key) as client:
        out = client.generate(PROMPT, max_new_tokens=FLAG_TOKENS, seed=seed).outputs[0]
    assert action_name(out.moderation.action) == "HELD" and out.ticket
    return out


def claim(channel: grpc.Channel, key: str, ticket: str) -> rv_pb.ReviewItem:
    """Claims items until it holds the one behind `ticket` (others from earlier tests are rejected)."""
    stub = rv_grpc.ReviewServiceStub(channel)
    for _ in range(50):
        reply = stub.ClaimNext(rv_pb.ClaimNextRequest(lease_seconds=60), metadata=md(key))
        assert reply.HasField("item"), f"ticket {ticket} never came up"
        if reply.item.ticket == ticket:
            return reply.item
        stub.Decide(
            rv_pb.DecideRequest(
                item_id=reply.item.id,
                expected_version=reply.item.version,
                decision=rv_pb.REVIEW_DECISION_REJECT,
                reason="not this test's",
            ),
            metadata=md(key),
        )
    raise AssertionError("queue did not drain")


def result(channel: grpc.Channel, key: str, ticket: str) -> gen_pb.Result:
    return gen_grpc.GenerationServiceStub(channel).GetResult(
        gen_pb.GetResultRequest(ticket=ticket), metadata=md(key)
    )


def decide(
    channel: grpc.Channel, key: str, item: rv_pb.ReviewItem, decision: int, **kw: str
) -> rv_pb.ReviewItem:
    return rv_grpc.ReviewServiceStub(channel).Decide(
        rv_pb.DecideRequest(item_id=item.id, expected_version=item.version, decision=decision, **kw),
        metadata=md(key),
    )


def test_approve_releases_the_text_only_after_approval(
    server: ServerThread, channel: grpc.Channel, keys: dict[str, str], flag_word: str
) -> None:
    out = hold_one(server, keys["client"])
    pending = result(channel, keys["client"], out.ticket)
    assert pending.state == gen_pb.RESULT_STATE_PENDING and pending.text == ""
    item = claim(channel, keys["rita"], out.ticket)
    assert flag_word in item.generated_text and item.prompt == PROMPT
    assert item.reasons[0].category == "profanity" and flag_word in item.reasons[0].excerpt
    assert result(channel, keys["client"], out.ticket).text == "", "claimed is not approved"
    decided = decide(channel, keys["rita"], item, rv_pb.REVIEW_DECISION_APPROVE)
    assert decided.state == rv_pb.REVIEW_STATE_APPROVED and decided.decided_by == "rita"
    final = result(channel, keys["client"], out.ticket)
    assert final.state == gen_pb.RESULT_STATE_APPROVED
    assert final.text == item.generated_text and final.HasField("decided_at")


def test_edit_releases_the_edited_text(
    server: ServerThread, channel: grpc.Channel, keys: dict[str, str]
) -> None:
    out = hold_one(server, keys["client"])
    item = claim(channel, keys["rita"], out.ticket)
    decide(channel, keys["rita"], item, rv_pb.REVIEW_DECISION_EDIT, edited_text="A reviewed sentence.")
    final = result(channel, keys["client"], out.ticket)
    assert final.state == gen_pb.RESULT_STATE_EDITED and final.text == "A reviewed sentence."


def test_reject_delivers_no_text_ever(
    server: ServerThread, channel: grpc.Channel, keys: dict[str, str]
) -> None:
    out = hold_one(server, keys["client"])
    item = claim(channel, keys["rita"], out.ticket)
    decide(channel, keys["rita"], item, rv_pb.REVIEW_DECISION_REJECT, reason="abusive")
    final = result(channel, keys["client"], out.ticket)
    assert final.state == gen_pb.RESULT_STATE_REJECTED and final.text == ""


def test_watch_result_streams_pending_then_the_decision(
    server: ServerThread, channel: grpc.Channel, keys: dict[str, str]
) -> None:
    out = hold_one(server, keys["client"])
    stub = gen_grpc.GenerationServiceStub(channel)
    watch = stub.WatchResult(
        gen_pb.GetResultRequest(ticket=out.ticket), metadata=md(keys["client"]), timeout=30
    )
    first = next(watch)
    assert first.state == gen_pb.RESULT_STATE_PENDING and first.text == ""
    item = claim(channel, keys["rita"], out.ticket)
    decide(channel, keys["rita"], item, rv_pb.REVIEW_DECISION_APPROVE)
    rest = list(watch)  # ends by itself once decided
    assert [r.state for r in rest] == [gen_pb.RESULT_STATE_APPROVED]
    assert rest[0].text == item.generated_text


def test_another_tenant_cannot_read_the_ticket(
    server: ServerThread, channel: grpc.Channel, keys: dict[str, str]
) -> None:
    out = hold_one(server, keys["client"])
    for ticket, key in ((out.ticket, keys["other"]), ("tkt_does_not_exist", keys["client"])):
        with pytest.raises(grpc.RpcError) as info:
            result(channel, key, ticket)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
        assert "no result for ticket" in info.value.details()


def test_only_the_claimant_decides_and_stale_versions_are_refused(
    server: ServerThread, channel: grpc.Channel, keys: dict[str, str]
) -> None:
    out = hold_one(server, keys["client"])
    item = claim(channel, keys["rita"], out.ticket)
    with pytest.raises(grpc.RpcError) as info:
        decide(channel, keys["ravi"], item, rv_pb.REVIEW_DECISION_APPROVE)
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    stale = rv_pb.ReviewItem(id=item.id, version=item.version - 1)
    with pytest.raises(grpc.RpcError) as info:
        decide(channel, keys["rita"], stale, rv_pb.REVIEW_DECISION_APPROVE)
    assert info.value.code() == grpc.StatusCode.ABORTED
    renewed = rv_grpc.ReviewServiceStub(channel).RenewLease(
        rv_pb.RenewLeaseRequest(item_id=item.id, lease_seconds=120), metadata=md(keys["rita"])
    )
    assert renewed.lease_expires_at.ToDatetime() > item.lease_expires_at.ToDatetime()
    decide(channel, keys["rita"], item, rv_pb.REVIEW_DECISION_REJECT)


def test_two_concurrent_reviewers_never_claim_the_same_item(
    server: ServerThread, channel: grpc.Channel, keys: dict[str, str]
) -> None:
    for _ in range(4):
        hold_one(server, keys["client"])
    claimed: dict[str, list[str]] = {"rita": [], "ravi": []}

    def work(name: str) -> None:
        stub = rv_grpc.ReviewServiceStub(channel)
        while True:
            reply = stub.ClaimNext(rv_pb.ClaimNextRequest(lease_seconds=60), metadata=md(keys[name]))
            if not reply.HasField("item"):
                return
            claimed[name].append(reply.item.id)
            decide(channel, keys[name], reply.item, rv_pb.REVIEW_DECISION_REJECT)

    threads = [threading.Thread(target=work, args=(n,)) for n in claimed]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    everything = claimed["rita"] + claimed["ravi"]
    assert len(everything) >= 4 and len(set(everything)) == len(everything)


def test_review_and_audit_need_their_scopes(channel: grpc.Channel, keys: dict[str, str]) -> None:
    with pytest.raises(grpc.RpcError) as info:
        rv_grpc.ReviewServiceStub(channel).ListItems(rv_pb.ListItemsRequest(), metadata=md(keys["client"]))
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.RpcError) as info:
        list(au_grpc.AuditServiceStub(channel).Query(au_pb.AuditQuery(), metadata=md(keys["rita"])))
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_audit_query_and_verify(server: ServerThread, channel: grpc.Channel, keys: dict[str, str]) -> None:
    out = hold_one(server, keys["client"])
    item = claim(channel, keys["rita"], out.ticket)
    decide(channel, keys["rita"], item, rv_pb.REVIEW_DECISION_APPROVE)
    result(channel, keys["client"], out.ticket)
    stub = au_grpc.AuditServiceStub(channel)
    events = list(stub.Query(au_pb.AuditQuery(ticket=out.ticket), metadata=md(keys["auditor"])))
    kinds = [e.event_type for e in events]
    for kind in (
        "moderation.decided",
        "review.held",
        "review.claimed",
        "review.approved",
        "result.released",
        "result.read",
    ):
        assert kind in kinds, kinds
    assert all(e.ticket == out.ticket for e in events)
    page = list(stub.Query(au_pb.AuditQuery(ticket=out.ticket, limit=2), metadata=md(keys["auditor"])))
    after = list(
        stub.Query(au_pb.AuditQuery(ticket=out.ticket, after_id=page[-1].id), metadata=md(keys["auditor"]))
    )
    assert [e.id for e in page + after] == [e.id for e in events]
    verdict = stub.Verify(au_pb.VerifyRequest(), metadata=md(keys["auditor"]))
    assert verdict.ok and verdict.checked >= len(events)
    with pytest.raises(grpc.RpcError) as info:
        list(stub.Query(au_pb.AuditQuery(limit=5000), metadata=md(keys["auditor"])))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_appeal_of_a_blocked_output_reaches_the_queue_and_approval_releases_it(
    server: ServerThread, channel: grpc.Channel, keys: dict[str, str], flag_word: str
) -> None:
    with GatewayClient(server.address, api_key=keys["blocked-client"]) as client:
        out = client.generate(PROMPT, max_new_tokens=FLAG_TOKENS, seed=FLAG_SEED).outputs[0]
    assert action_name(out.moderation.action) == "BLOCKED" and out.text == "" and out.ticket
    blocked = result(channel, keys["blocked-client"], out.ticket)
    assert blocked.state == gen_pb.RESULT_STATE_BLOCKED and blocked.text == ""
    stub = gen_grpc.GenerationServiceStub(channel)
    with pytest.raises(grpc.RpcError) as info:  # another tenant cannot appeal it
        stub.Appeal(gen_pb.AppealRequest(ticket=out.ticket), metadata=md(keys["other"]))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    appealed = stub.Appeal(
        gen_pb.AppealRequest(ticket=out.ticket, reason="it is a quote from a novel"),
        metadata=md(keys["blocked-client"]),
    )
    assert appealed.state == gen_pb.RESULT_STATE_PENDING and appealed.text == ""
    with pytest.raises(grpc.RpcError) as info:  # once is enough
        stub.Appeal(gen_pb.AppealRequest(ticket=out.ticket), metadata=md(keys["blocked-client"]))
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    item = claim(channel, keys["rita"], out.ticket)
    assert item.appeal and item.appeal_reason == "it is a quote from a novel"
    assert flag_word in item.generated_text
    decide(channel, keys["rita"], item, rv_pb.REVIEW_DECISION_APPROVE)
    final = result(channel, keys["blocked-client"], out.ticket)
    assert final.state == gen_pb.RESULT_STATE_APPROVED and final.text == item.generated_text


def test_only_blocked_outputs_can_be_appealed(
    server: ServerThread, channel: grpc.Channel, keys: dict[str, str]
) -> None:
    out = hold_one(server, keys["client"])
    with pytest.raises(grpc.RpcError) as info:
        gen_grpc.GenerationServiceStub(channel).Appeal(
            gen_pb.AppealRequest(ticket=out.ticket), metadata=md(keys["client"])
        )
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "already in the review queue" in info.value.details()


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"decision": rv_pb.REVIEW_DECISION_REJECT, "reason": "x" * 2001}, "reason"),
        ({"decision": rv_pb.REVIEW_DECISION_REJECT, "reason": "no\x00pe"}, "reason"),
        ({"decision": rv_pb.REVIEW_DECISION_EDIT, "edited_text": "y" * 20_001}, "edited_text"),
        ({"decision": rv_pb.REVIEW_DECISION_EDIT, "edited_text": "A\x00B"}, "edited_text"),
    ],
)
def test_decide_refuses_oversized_or_nul_text_and_the_claim_stays(
    server: ServerThread, channel: grpc.Channel, keys: dict[str, str], kw: dict[str, object], field: str
) -> None:
    out = hold_one(server, keys["client"])
    item = claim(channel, keys["rita"], out.ticket)
    stub = rv_grpc.ReviewServiceStub(channel)
    with pytest.raises(grpc.RpcError) as info:
        stub.Decide(
            rv_pb.DecideRequest(item_id=item.id, expected_version=item.version, **kw),  # type: ignore[arg-type]
            metadata=md(keys["rita"]),
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details().startswith(f"{field}: ")
    # Nothing was decided: the holder can still decide at the same version.
    decided = decide(channel, keys["rita"], item, rv_pb.REVIEW_DECISION_REJECT, reason="x" * 2000)
    assert decided.state == rv_pb.REVIEW_STATE_REJECTED


@pytest.mark.parametrize("ticket", ["tkt_\x00", "tkt_ab cd", "tkt_é"])
def test_malformed_tickets_are_invalid_argument(
    channel: grpc.Channel, keys: dict[str, str], ticket: str
) -> None:
    stub = gen_grpc.GenerationServiceStub(channel)
    for method, request in [
        (stub.GetResult, gen_pb.GetResultRequest(ticket=ticket)),
        (stub.Appeal, gen_pb.AppealRequest(ticket=ticket)),
    ]:
        with pytest.raises(grpc.RpcError) as info:
            method(request, metadata=md(keys["client"]))
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
        assert info.value.details().startswith("ticket: ")


def test_appeal_reason_with_nul_is_invalid_argument(
    server: ServerThread, channel: grpc.Channel, keys: dict[str, str]
) -> None:
    with GatewayClient(server.address, api_key=keys["blocked-client"]) as client:
        out = client.generate(PROMPT, max_new_tokens=FLAG_TOKENS, seed=FLAG_SEED).outputs[0]
    assert action_name(out.moderation.action) == "BLOCKED"
    stub = gen_grpc.GenerationServiceStub(channel)
    with pytest.raises(grpc.RpcError) as info:
        stub.Appeal(
            gen_pb.AppealRequest(ticket=out.ticket, reason="a\x00b"), metadata=md(keys["blocked-client"])
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details().startswith("reason: ")
    appealed = stub.Appeal(
        gen_pb.AppealRequest(ticket=out.ticket, reason="ok"), metadata=md(keys["blocked-client"])
    )
    assert appealed.state == gen_pb.RESULT_STATE_PENDING
