"""A disabled reviewer's API key is refused on every ReviewService call, listing included, even though
the key itself was never revoked."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import grpc
import pytest
from sqlalchemy.orm import Session

from gateway.api.v1 import review_pb2 as rv_pb
from gateway.api.v1 import review_pb2_grpc as rv_grpc
from gateway.review.reviewers import create_reviewer, disable_reviewer
from gateway.storage.apikeys import create_key
from gateway.storage.engine import make_engine
from moderation.types import Action
from tests.integration.gateway_harness import ServerThread

PASSWORD = "correct horse battery staple"
NO_ITEM = "00000000-0000-4000-8000-000000000000"  # a well-formed id that names no item


@pytest.fixture(scope="module")
def server(make_gateway: Callable[..., ServerThread]) -> ServerThread:
    return make_gateway(Action.HOLD, insecure_no_auth=False)


@pytest.fixture(scope="module")
def channel(server: ServerThread) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(server.address) as ch:
        yield ch


def _key_for(db_url: str, username: str) -> str:
    engine = make_engine(db_url)
    try:
        with Session(engine) as s, s.begin():
            create_reviewer(session=s, username=username, password=PASSWORD)
            _, secret = create_key(
                session=s, tenant="staff", name=username, scopes=["review"], reviewer=username
            )
            return secret
    finally:
        engine.dispose()


def _disable(db_url: str, username: str) -> None:
    engine = make_engine(db_url)
    try:
        with Session(engine) as s, s.begin():
            disable_reviewer(session=s, username=username)
    finally:
        engine.dispose()


def test_a_disabled_reviewer_gets_permission_denied_on_every_call(channel: grpc.Channel, db_url: str) -> None:
    key = _key_for(db_url, "leaving-reviewer")
    md = (("authorization", f"Bearer {key}"),)
    stub = rv_grpc.ReviewServiceStub(channel)
    stub.ListItems(rv_pb.ListItemsRequest(), metadata=md)  # works while the account is active
    _disable(db_url, "leaving-reviewer")
    calls = {
        "ListItems": lambda: stub.ListItems(rv_pb.ListItemsRequest(), metadata=md),
        "ClaimNext": lambda: stub.ClaimNext(rv_pb.ClaimNextRequest(), metadata=md),
        "RenewLease": lambda: stub.RenewLease(rv_pb.RenewLeaseRequest(item_id=NO_ITEM), metadata=md),
        "Decide": lambda: stub.Decide(
            rv_pb.DecideRequest(item_id=NO_ITEM, expected_version=1, decision=rv_pb.REVIEW_DECISION_REJECT),
            metadata=md,
        ),
    }
    for name, call in calls.items():
        with pytest.raises(grpc.RpcError) as refused:
            call()
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED, name
        assert "disabled" in (refused.value.details() or ""), name
