"""WatchResult is bounded: in time (DEADLINE_EXCEEDED, watch again), in number per key
(RESOURCE_EXHAUSTED), by its key staying valid (UNAUTHENTICATED once revoked), and its polls take no
write lock. GetResult and Appeal draw on the key's requests per minute like generation calls."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator

import grpc
import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from gateway.api.v1 import generation_pb2 as gen_pb
from gateway.api.v1 import generation_pb2_grpc as gen_grpc
from gateway.client import GatewayClient, action_name
from gateway.storage.apikeys import create_key, revoke_key
from gateway.storage.engine import make_engine
from moderation.types import Action
from tests.integration.conftest import FLAG_SEED, FLAG_TOKENS, PROMPT
from tests.integration.gateway_harness import ServerThread

WATCH_MAX_S = 1.5


@pytest.fixture(scope="module")
def server(make_gateway: Callable[..., ServerThread]) -> ServerThread:
    return make_gateway(
        Action.HOLD,
        insecure_no_auth=False,
        watch_max_s=WATCH_MAX_S,
        watch_max_per_key=2,
        watch_recheck_s=0.2,
    )


@pytest.fixture(scope="module")
def keys(db_url: str) -> dict[str, str]:
    engine = make_engine(db_url)
    with Session(engine) as s, s.begin():
        made = {
            name: create_key(session=s, tenant="watchers", name=name, scopes=["generate"], **limits)[1]
            for name, limits in [
                ("a", {}),
                ("b", {}),
                ("doomed", {}),
                ("three-per-minute", {"requests_per_minute": 3}),
            ]
        }
    engine.dispose()
    return made


@pytest.fixture(scope="module")
def channel(server: ServerThread) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(server.address) as ch:
        yield ch


def md(key: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {key}"),)


def held_ticket(server: ServerThread, key: str) -> str:
    with GatewayClient(server.address, api_key=key) as client:
        (out,) = client.generate(PROMPT, max_new_tokens=FLAG_TOKENS, seed=FLAG_SEED).outputs
    assert action_name(out.moderation.action) == "HELD"
    return out.ticket


def watch(channel: grpc.Channel, key: str, ticket: str) -> grpc.Future:
    return gen_grpc.GenerationServiceStub(channel).WatchResult(
        gen_pb.GetResultRequest(ticket=ticket), metadata=md(key), timeout=30
    )


def test_a_watch_ends_after_its_time_with_deadline_exceeded(
    server: ServerThread, channel: grpc.Channel, keys: dict[str, str]
) -> None:
    ticket = held_ticket(server, keys["a"])
    started = time.monotonic()
    stream = watch(channel, keys["a"], ticket)
    assert next(stream).state == gen_pb.RESULT_STATE_PENDING
    with pytest.raises(grpc.RpcError) as info:
        next(stream)
    elapsed = time.monotonic() - started
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "call WatchResult again" in info.value.details()
    assert WATCH_MAX_S <= elapsed < WATCH_MAX_S + 5, "the server ended it, not the client's 30 s deadline"


def test_a_key_holds_a_bounded_number_of_watches(
    server: ServerThread, channel: grpc.Channel, keys: dict[str, str]
) -> None:
    ticket = held_ticket(server, keys["b"])
    first, second = watch(channel, keys["b"], ticket), watch(channel, keys["b"], ticket)
    assert next(first).state == next(second).state == gen_pb.RESULT_STATE_PENDING
    with pytest.raises(grpc.RpcError) as info:
        next(watch(channel, keys["b"], ticket))
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "WatchResult" in info.value.details()
    first.cancel()
    second.cancel()
    deadline = time.monotonic() + 5
    while True:  # the server sees the cancellations soon after: a new watch is let in
        try:
            again = watch(channel, keys["b"], ticket)
            assert next(again).state == gen_pb.RESULT_STATE_PENDING
            again.cancel()
            break
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and time.monotonic() < deadline
            time.sleep(0.1)


def test_a_revoked_key_stops_receiving(
    make_gateway: Callable[..., ServerThread], keys: dict[str, str], db_url: str
) -> None:
    """Its own gateway, whose watches last far longer than the test: only the revocation can end the
    stream (with the module's 1.5 s watches, a slow machine saw DEADLINE_EXCEEDED win the race)."""
    server = make_gateway(Action.HOLD, insecure_no_auth=False, watch_max_s=60, watch_recheck_s=0.2)
    ticket = held_ticket(server, keys["doomed"])
    with grpc.insecure_channel(server.address) as channel:
        started = time.monotonic()
        stream = watch(channel, keys["doomed"], ticket)
        assert next(stream).state == gen_pb.RESULT_STATE_PENDING
        engine = make_engine(db_url)
        with Session(engine) as s, s.begin():
            revoke_key(session=s, key_id=keys["doomed"].split("_")[1])
        engine.dispose()
        with pytest.raises(grpc.RpcError) as info:
            next(stream)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "revoked" in info.value.details()
    assert time.monotonic() - started < 20, "ended by the revocation, not by the client's 30 s deadline"


def test_watch_polls_take_no_write_lock(
    server: ServerThread, channel: grpc.Channel, keys: dict[str, str], db_url: str
) -> None:
    """With another connection holding SQLite's one write lock, a running watch keeps polling (and so
    ends on time): its polls are read-only transactions, not BEGIN IMMEDIATE."""
    ticket = held_ticket(server, keys["a"])
    stream = watch(channel, keys["a"], ticket)
    assert next(stream).state == gen_pb.RESULT_STATE_PENDING
    writer = sqlite3.connect(make_url(db_url).database or "", isolation_level=None, timeout=30)
    try:
        writer.execute("BEGIN IMMEDIATE")
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as info:
            next(stream)
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert time.monotonic() - started < WATCH_MAX_S + 3
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_get_result_and_appeal_count_against_requests_per_minute(
    server: ServerThread, channel: grpc.Channel, keys: dict[str, str]
) -> None:
    key = keys["three-per-minute"]
    ticket = held_ticket(server, key)  # 1
    stub = gen_grpc.GenerationServiceStub(channel)
    stub.GetResult(gen_pb.GetResultRequest(ticket=ticket), metadata=md(key))  # 2
    with pytest.raises(grpc.RpcError) as appeal:  # 3: let in, then refused for what it asks
        stub.Appeal(gen_pb.AppealRequest(ticket=ticket), metadata=md(key))
    assert appeal.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    for call in (
        lambda: stub.GetResult(gen_pb.GetResultRequest(ticket=ticket), metadata=md(key)),
        lambda: stub.Appeal(gen_pb.AppealRequest(ticket=ticket), metadata=md(key)),
        lambda: next(watch(channel, key, ticket)),
    ):
        with pytest.raises(grpc.RpcError) as info:
            call()
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "requests per minute" in info.value.details()
