"""Webhooks from the outbox, delivered by the real worker to a real HTTP receiver, on both backends.

The events are written by the real queue functions (hold, decide, appeal) in their transactions; the
worker runs pass by pass (`deliver_due`) against a threaded http.server on a loopback port.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from gateway.errors import InvalidArgument, NotFound
from gateway.review import Decision, claim_next, decide
from gateway.review.appeals import appeal
from gateway.storage.models import DeliveryState, Reviewer, ReviewItem, WebhookDelivery
from gateway.webhooks import events as ev
from gateway.webhooks.delivery import RetryPolicy, WebhookWorker
from gateway.webhooks.endpoints import create_endpoint, list_endpoints, remove_endpoint
from gateway.webhooks.outbox import list_deliveries, redeliver
from tests.support.held import hold_output, record_one
from tests.support.serve_process import free_ports
from tests.support.webhook_receiver import Receiver

DOCS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
FAST = RetryPolicy(timeout_s=0.5, retry_base_s=0.05, retry_max_s=0.2, give_up_s=60.0)
PAYLOAD_KEYS = {"id", "type", "created_at", "tenant", "ticket", "request_id", "state"}
SECRET_TEXT = "the withheld words zqx-4471"


def doc_verifier() -> Callable[..., bool]:
    """The verification snippet of docs/operations.md, run as written."""
    text = DOCS.read_text(encoding="utf-8")
    match = re.search(r"<!-- webhook-verify-snippet -->\n```python\n(.*?)```", text, re.S)
    assert match, "the verification snippet is missing from docs/operations.md"
    namespace: dict[str, Any] = {}
    exec(compile(match.group(1), str(DOCS), "exec"), namespace)
    verifier: Callable[..., bool] = namespace["verify_modgate_signature"]
    return verifier


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


def add_endpoint(
    db: sessionmaker[Session], url: str, events: list[str], tenant: str = "acme"
) -> tuple[str, str]:
    with db() as s, s.begin():
        endpoint, secret = create_endpoint(session=s, tenant=tenant, url=url, events=events, actor="test")
        return endpoint.id, secret


def drain(worker: WebhookWorker, until: Callable[[], bool], timeout: float = 20.0) -> None:
    """Runs delivery passes until `until()` holds (or fails after `timeout`)."""

    async def loop() -> None:
        deadline = time.monotonic() + timeout
        while not until():
            assert time.monotonic() < deadline, "webhook deliveries did not settle in time"
            await worker.deliver_due()
            await asyncio.sleep(0.02)

    async def main() -> None:
        try:
            await loop()
        finally:
            await worker.aclose()

    asyncio.run(main())


def rows(db: sessionmaker[Session]) -> list[WebhookDelivery]:
    with db() as s:
        return list_deliveries(session=s, limit=1000)


def decide_one(
    db: sessionmaker[Session], reviewer: Reviewer, decision: str, edited: str | None = None
) -> None:
    with db() as s, s.begin():
        item = claim_next(session=s, reviewer=reviewer)
        assert item is not None
        decide(
            session=s,
            item_id=item.id,
            reviewer=reviewer,
            expected_version=item.version,
            decision=decision,
            edited_text=edited,
            reason="a reason that is text too",
        )


def test_events_are_signed_verified_by_the_doc_snippet_and_carry_no_text(
    db: sessionmaker[Session],
    receiver: Receiver,
    add_held: Callable[..., ReviewItem],
    add_reviewer: Callable[..., Reviewer],
) -> None:
    _, secret = add_endpoint(db, receiver.url, [ev.OUTPUT_HELD, ev.REVIEW_DECIDED])
    held = add_held(text=SECRET_TEXT)
    edited = add_held(text=SECRET_TEXT + " two")
    reviewer = add_reviewer()
    decide_one(db, reviewer, Decision.APPROVE)  # both have one priority: the older first
    decide_one(db, reviewer, Decision.EDIT, edited="an edit zqx-9013")
    drain(WebhookWorker(db, FAST), lambda: len(receiver.received) == 4)

    verify = doc_verifier()
    for got in receiver.received:
        header = got.headers["Modgate-Signature"]
        assert re.fullmatch(r"t=\d+,v1=[0-9a-f]{64}", header)
        assert verify(secret, header, got.body)
        assert not verify(secret + "x", header, got.body)
        assert not verify(secret, header, got.body.replace(b"acme", b"acmf"))
        assert set(got.event) == PAYLOAD_KEYS
        assert got.headers["Modgate-Event-Id"] == got.event["id"]
        assert got.headers["Modgate-Event-Type"] == got.event["type"]
        for text in (SECRET_TEXT, "zqx-4471", "zqx-9013", "a reason"):
            assert text.encode() not in got.raw
    old = got.headers["Modgate-Signature"].replace("t=", "t=1")  # another time: the digest no longer fits
    assert not verify(secret, old, got.body)

    by_ticket: dict[str, list[tuple[str, str]]] = {}
    for e in receiver.events():
        assert e["tenant"] == "acme"
        by_ticket.setdefault(e["ticket"], []).append((e["type"], e["state"]))
    assert by_ticket == {
        held.output.ticket: [(ev.OUTPUT_HELD, "held"), (ev.REVIEW_DECIDED, "approved")],
        edited.output.ticket: [(ev.OUTPUT_HELD, "held"), (ev.REVIEW_DECIDED, "edited")],
    }
    assert {r.state for r in rows(db)} == {DeliveryState.DELIVERED}


def test_only_subscribed_endpoints_of_the_tenant_get_an_event(
    db: sessionmaker[Session], receiver: Receiver, add_held: Callable[..., ReviewItem]
) -> None:
    add_endpoint(db, receiver.url, [ev.REVIEW_DECIDED])  # acme, but another event
    add_endpoint(db, receiver.url, [ev.OUTPUT_HELD], tenant="globex")  # the event, another tenant
    add_held(tenant="acme")
    add_held(tenant="initech")
    assert rows(db) == []
    add_endpoint(db, receiver.url, [ev.OUTPUT_HELD, ev.OUTPUT_BLOCKED])
    add_endpoint(db, receiver.url + "/second", [ev.OUTPUT_HELD])
    add_held(tenant="acme")
    written = rows(db)
    assert len(written) == 2 and len({r.event_id for r in written}) == 1  # one event, two endpoints


def test_appeal_events_and_blocked(
    db: sessionmaker[Session], receiver: Receiver, add_reviewer: Callable[..., Reviewer]
) -> None:
    add_endpoint(db, receiver.url, [ev.APPEAL_OPENED, ev.APPEAL_DECIDED, ev.REVIEW_DECIDED])
    with db() as s, s.begin():
        output = record_one(s, request_id="req-b", action="block", text=SECRET_TEXT)
        output.ticket = "tkt_blocked1"
    with db() as s, s.begin():
        appeal(session=s, ticket="tkt_blocked1", tenant="acme", reason="please zqx-4471", actor="client")
    decide_one(db, add_reviewer(), Decision.REJECT)
    drain(WebhookWorker(db, FAST), lambda: len(receiver.received) == 2)
    assert [(e["type"], e["state"], e["request_id"]) for e in receiver.events()] == [
        (ev.APPEAL_OPENED, "held", "req-b"),
        (ev.APPEAL_DECIDED, "rejected", "req-b"),
    ]
    assert all(b"zqx" not in r.raw for r in receiver.received)


def test_retries_after_500s_then_delivered(
    db: sessionmaker[Session], add_held: Callable[..., ReviewItem]
) -> None:
    answers = iter([500, 503, 200])
    receiver = Receiver(respond=lambda _e: next(answers)).start()
    try:
        add_endpoint(db, receiver.url, [ev.OUTPUT_HELD])
        add_held()
        drain(WebhookWorker(db, FAST), lambda: rows(db)[0].state == DeliveryState.DELIVERED)
    finally:
        receiver.stop()
    (row,) = rows(db)
    assert row.attempts == 3 and row.last_error is None and row.delivered_at is not None
    assert len({r.event["id"] for r in receiver.received}) == 1 and len(receiver.received) == 3


def test_retries_after_a_timeout(db: sessionmaker[Session], add_held: Callable[..., ReviewItem]) -> None:
    answers = iter([2.0, 200])  # stalls past the 0.5 s timeout, then answers
    receiver = Receiver(respond=lambda _e: next(answers)).start()
    try:
        add_endpoint(db, receiver.url, [ev.OUTPUT_HELD])
        add_held()
        worker = WebhookWorker(db, FAST)
        seen_error: list[str | None] = []

        def settled() -> bool:
            (row,) = rows(db)
            seen_error.append(row.last_error)
            return row.state == DeliveryState.DELIVERED

        drain(worker, settled)
    finally:
        receiver.stop()
    assert "timed out after 0.5s" in seen_error
    assert rows(db)[0].attempts == 2


def test_order_per_ticket_and_other_tickets_do_not_wait(
    db: sessionmaker[Session], add_held: Callable[..., ReviewItem], add_reviewer: Callable[..., Reviewer]
) -> None:
    failures = {"left": 3}
    slow_ticket: dict[str, str] = {}

    def respond(event: dict[str, Any]) -> int:
        if event["ticket"] == slow_ticket["t"] and event["type"] == ev.OUTPUT_HELD and failures["left"]:
            failures["left"] -= 1
            return 500
        return 200

    receiver = Receiver(respond=respond).start()
    try:
        add_endpoint(db, receiver.url, [ev.OUTPUT_HELD, ev.REVIEW_DECIDED])
        slow = add_held(priority=0.9)
        slow_ticket["t"] = str(slow.output.ticket)
        reviewer = add_reviewer()
        decide_one(db, reviewer, Decision.REJECT)  # the slow ticket's decision is written
        other = add_held(priority=0.1)
        drain(
            WebhookWorker(db, FAST),
            lambda: len(rows(db)) == 3 and all(r.state == DeliveryState.DELIVERED for r in rows(db)),
        )
    finally:
        receiver.stop()
    order = [(e["ticket"], e["type"]) for e in receiver.events()]
    slow_events = [t for ticket, t in order if ticket == slow.output.ticket]
    assert slow_events == [ev.OUTPUT_HELD] * 4 + [ev.REVIEW_DECIDED]
    # The other ticket's event went out while the slow ticket's first event was still failing.
    assert order.index((other.output.ticket, ev.OUTPUT_HELD)) < order.index(
        (slow.output.ticket, ev.REVIEW_DECIDED)
    )


def test_a_receiver_down_for_a_while_gets_everything_when_it_comes_up(
    db: sessionmaker[Session], add_held: Callable[..., ReviewItem]
) -> None:
    (port,) = free_ports(1)
    receiver = Receiver(port=port)  # not started: connections are refused
    add_endpoint(db, receiver.url, [ev.OUTPUT_HELD])
    items = [add_held() for _ in range(3)]
    worker = WebhookWorker(db, RetryPolicy(timeout_s=0.5, retry_base_s=0.05, retry_max_s=0.1, give_up_s=60.0))

    async def while_down() -> None:
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            await worker.deliver_due()
            await asyncio.sleep(0.02)

    asyncio.run(while_down())
    down = rows(db)
    assert all(r.state == DeliveryState.PENDING and r.attempts >= 1 for r in down)
    assert all(r.last_error and r.last_error.startswith("ConnectError") for r in down)
    receiver.start()
    try:
        drain(worker, lambda: all(r.state == DeliveryState.DELIVERED for r in rows(db)))
    finally:
        receiver.stop()
    assert sorted(e["ticket"] for e in receiver.events()) == sorted(i.output.ticket for i in items)


def test_dead_after_give_up_then_redelivered(
    db: sessionmaker[Session], add_held: Callable[..., ReviewItem]
) -> None:
    status = {"code": 500}
    receiver = Receiver(respond=lambda _e: status["code"]).start()
    try:
        add_endpoint(db, receiver.url, [ev.OUTPUT_HELD])
        add_held()
        add_held()
        policy = RetryPolicy(timeout_s=0.5, retry_base_s=0.05, retry_max_s=0.1, give_up_s=0.3)
        drain(WebhookWorker(db, policy), lambda: all(r.state == DeliveryState.DEAD for r in rows(db)))
        dead = rows(db)
        assert all(r.last_error == "HTTP 500" and r.attempts >= 1 for r in dead)  # retries: tests above
        with db() as s:
            assert len(list_deliveries(session=s, state=DeliveryState.DEAD)) == 2

        status["code"] = 200
        with db() as s, s.begin():
            assert redeliver(session=s, actor="test", delivery_id=dead[0].id) == 1
        drain(WebhookWorker(db, policy), lambda: rows(db)[0].state == DeliveryState.DELIVERED)
        assert rows(db)[1].state == DeliveryState.DEAD
        with db() as s, s.begin(), pytest.raises(InvalidArgument, match="delivered, not dead"):
            redeliver(session=s, actor="test", delivery_id=dead[0].id)
        with db() as s, s.begin(), pytest.raises(NotFound):
            redeliver(session=s, actor="test", delivery_id=999_999)
        with db() as s, s.begin():
            assert redeliver(session=s, actor="test", all_dead=True) == 1
        drain(WebhookWorker(db, policy), lambda: all(r.state == DeliveryState.DELIVERED for r in rows(db)))
    finally:
        receiver.stop()


def test_removing_an_endpoint_drops_its_undelivered_events(
    db: sessionmaker[Session], add_held: Callable[..., ReviewItem]
) -> None:
    endpoint_id, _ = add_endpoint(db, "http://127.0.0.1:9/hook", [ev.OUTPUT_HELD])
    add_held()
    with db() as s, s.begin():
        with pytest.raises(NotFound):
            remove_endpoint(session=s, endpoint_id=endpoint_id, actor="test", tenant="globex")
        remove_endpoint(session=s, endpoint_id=endpoint_id, actor="test", tenant="acme")
    with db() as s:
        assert list_endpoints(session=s) == []
        assert s.scalar(select(func.count()).select_from(WebhookDelivery)) == 0


@pytest.mark.parametrize(
    ("url", "events", "message"),
    [
        ("ftp://example.com/x", [ev.OUTPUT_HELD], "http:// or https://"),
        ("https://user:pw@example.com/x", [ev.OUTPUT_HELD], "user name or password"),
        ("https://example.com/a b", [ev.OUTPUT_HELD], "spaces"),
        ("https://example.com:99999/", [ev.OUTPUT_HELD], "not a valid URL"),
        ("https://" + "a" * 2050, [ev.OUTPUT_HELD], "1-2048"),
        ("https://example.com/", [], "at least one"),
        ("https://example.com/", ["output.released"], "unknown event type"),
    ],
)
def test_bad_endpoints_are_refused_with_the_reason(
    db: sessionmaker[Session], url: str, events: list[str], message: str
) -> None:
    with db() as s, s.begin(), pytest.raises(InvalidArgument, match=message):
        create_endpoint(session=s, tenant="acme", url=url, events=events, actor="test")


def test_two_workers_deliver_each_event_exactly_once(
    db_url: str,
    db: sessionmaker[Session],
    receiver: Receiver,
    add_held: Callable[..., ReviewItem],
    add_reviewer: Callable[..., Reviewer],
) -> None:
    """Two workers on two engines (as two gateway replicas): PostgreSQL's SKIP LOCKED (SQLite's writer
    lock) hands each event to one of them."""
    from gateway.storage import make_engine, make_session_factory

    engines = [make_engine(db_url) for _ in range(2)]
    factories = [make_session_factory(e) for e in engines]
    add_endpoint(factories[0], receiver.url, [ev.OUTPUT_HELD, ev.REVIEW_DECIDED])
    for _ in range(30):
        add_held()
    reviewer = add_reviewer()
    for _ in range(10):
        decide_one(factories[0], reviewer, Decision.APPROVE)
    workers = [WebhookWorker(f, RetryPolicy(timeout_s=5.0, batch=4)) for f in factories]
    passes = [0, 0]

    async def run(i: int) -> None:
        deadline = time.monotonic() + 30
        while len(receiver.received) < 40 and time.monotonic() < deadline:
            passes[i] += bool(await workers[i].deliver_due())
        await workers[i].aclose()

    async def main() -> None:
        await asyncio.gather(run(0), run(1))

    try:
        asyncio.run(main())
    finally:
        for e in engines:
            e.dispose()
    ids = [e["id"] for e in receiver.events()]
    assert len(ids) == 40 and len(set(ids)) == 40
    assert all(r.state == DeliveryState.DELIVERED and r.attempts == 1 for r in rows(db))
    assert passes[0] and passes[1], passes  # both took part


def test_migration_0010_down_and_up(empty_db_url: str) -> None:
    from sqlalchemy import inspect

    from gateway.storage import make_engine, migrate

    def tables() -> set[str]:
        engine = make_engine(empty_db_url)
        try:
            return set(inspect(engine).get_table_names())
        finally:
            engine.dispose()

    migrate.upgrade(empty_db_url, "0010")
    assert {"webhook_endpoints", "webhook_deliveries"} <= tables()
    migrate.downgrade(empty_db_url, "0009")
    assert migrate.current(empty_db_url) == "0009"
    assert not {"webhook_endpoints", "webhook_deliveries"} & tables()
    migrate.upgrade(empty_db_url, "0010")
    assert {"webhook_endpoints", "webhook_deliveries"} <= tables()


def test_backoff_doubles_with_jitter_up_to_the_cap() -> None:
    import random

    policy = RetryPolicy(retry_base_s=5.0, retry_max_s=60.0)
    rng = random.Random(7)
    for attempts, step in [(1, 5.0), (2, 10.0), (3, 20.0), (4, 40.0), (5, 60.0), (500, 60.0)]:
        delays = [policy.backoff(attempts, rng) for _ in range(200)]
        assert all(step / 2 <= d <= step for d in delays)
        assert max(delays) - min(delays) > step / 4  # jittered, not one fixed delay


def test_a_dead_event_stops_holding_back_its_ticket_and_is_counted(
    db: sessionmaker[Session], add_held: Callable[..., ReviewItem], add_reviewer: Callable[..., Reviewer]
) -> None:
    from gateway.ops.metrics import WEBHOOK_SENDS

    def count(outcome: str) -> float:
        return float(WEBHOOK_SENDS.labels(outcome)._value.get())

    before = {o: count(o) for o in ("delivered", "retry", "dead")}
    receiver = Receiver(respond=lambda e: 500 if e["type"] == ev.OUTPUT_HELD else 200).start()
    try:
        add_endpoint(db, receiver.url, [ev.OUTPUT_HELD, ev.REVIEW_DECIDED])
        add_held()
        decide_one(db, add_reviewer(), Decision.APPROVE)
        policy = RetryPolicy(timeout_s=0.5, retry_base_s=0.05, retry_max_s=0.1, give_up_s=0.4)
        drain(
            WebhookWorker(db, policy),
            lambda: [r.state for r in rows(db)] == [DeliveryState.DEAD, DeliveryState.DELIVERED],
        )
    finally:
        receiver.stop()
    types = [e["type"] for e in receiver.events()]
    assert types[-1] == ev.REVIEW_DECIDED and set(types[:-1]) == {ev.OUTPUT_HELD}  # only after the first died
    assert count("dead") == before["dead"] + 1
    assert count("delivered") == before["delivered"] + 1
    assert count("retry") == before["retry"] + len(types) - 2


def test_old_delivered_events_are_pruned_dead_and_pending_kept(
    db: sessionmaker[Session], receiver: Receiver, add_held: Callable[..., ReviewItem]
) -> None:
    from datetime import timedelta

    from sqlalchemy import update

    from gateway.storage.base import utcnow

    add_endpoint(db, receiver.url, [ev.OUTPUT_HELD])
    for _ in range(4):
        add_held()
    ids = [r.id for r in rows(db)]
    long_ago = utcnow() - timedelta(days=8)
    with db() as s, s.begin():
        d = WebhookDelivery
        s.execute(
            update(d).where(d.id == ids[0]).values(state=DeliveryState.DELIVERED, delivered_at=long_ago)
        )
        s.execute(
            update(d).where(d.id == ids[1]).values(state=DeliveryState.DELIVERED, delivered_at=utcnow())
        )
        s.execute(update(d).where(d.id == ids[2]).values(state=DeliveryState.DEAD, created_at=long_ago))
    worker = WebhookWorker(db, RetryPolicy(keep_delivered_s=7 * 86400.0))

    async def prune() -> int:
        try:
            return await worker.prune()
        finally:
            await worker.aclose()

    assert asyncio.run(prune()) == 1
    assert [(r.id, r.state) for r in rows(db)] == [
        (ids[1], DeliveryState.DELIVERED),
        (ids[2], DeliveryState.DEAD),
        (ids[3], DeliveryState.PENDING),
    ]


def test_an_event_exists_only_if_its_change_committed(db: sessionmaker[Session], receiver: Receiver) -> None:
    """The outbox row is written in the change's transaction: a rolled-back hold leaves no event."""
    from gateway.storage.models import GenerationOutput

    add_endpoint(db, receiver.url, [ev.OUTPUT_HELD])

    class Abort(Exception):
        pass

    with pytest.raises(Abort), db() as s, s.begin():
        hold_output(s, request_id="req-rb", text="t")
        assert s.scalar(select(func.count()).select_from(WebhookDelivery)) == 1  # written, not committed
        raise Abort
    with db() as s:
        assert s.scalar(select(func.count()).select_from(GenerationOutput)) == 0
        assert s.scalar(select(func.count()).select_from(WebhookDelivery)) == 0
