"""The delivery worker: sends the outbox's due events, signed, at least once, in order per ticket.

One pass (`WebhookWorker.deliver_due`):
1. Claim, in a short transaction: due pending rows with no earlier pending row for the same endpoint and
   ticket (order per ticket), oldest first. On PostgreSQL `FOR UPDATE SKIP LOCKED`, so that replicas
   sharing the database claim different rows; on SQLite the writer lock (BEGIN IMMEDIATE) serialises
   claimers. A claim counts the attempt and moves `next_attempt_at` a lease ahead (the send timeout plus
   a margin): no other worker takes the row while it is being sent, and if this process dies mid-send
   the row falls due again when the lease ends. No transaction is open while sending.
2. POST each claimed event (concurrently: a batch holds at most one row per endpoint and ticket).
3. Record the outcomes in one transaction: 2xx -> delivered; anything else (a status, a timeout, a
   refused connection) -> retried after an exponential backoff with jitter, or dead once the next try
   would fall past the give-up time counted from `retry_since`.
A dead row does not hold back later events of its ticket (they would all die behind it); it stays listed
(`modgate webhooks dead`) until redelivered.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session, aliased, sessionmaker

from gateway.ops.metrics import WEBHOOK_SENDS
from gateway.ops.periodic import backoff_step, repeat
from gateway.storage.base import utcnow
from gateway.storage.engine import is_postgresql
from gateway.storage.models import DeliveryState, WebhookDelivery, WebhookEndpoint
from gateway.storage.tx import run_in_transaction
from gateway.webhooks.outbox import prune_delivered
from gateway.webhooks.signing import EVENT_ID_HEADER, EVENT_TYPE_HEADER, SIGNATURE_HEADER, signature

log = logging.getLogger(__name__)

PRUNE_EVERY_S = 3600.0
LEASE_MARGIN_S = 5.0  # the outcome is recorded in one short transaction after the send
MAX_ERROR_CHARS = 300
USER_AGENT = "modgate-webhooks/1"


@dataclass(frozen=True)
class RetryPolicy:
    """How long one send may take, how retries back off, and when to give up (gateway/config.py)."""

    timeout_s: float = 10.0
    retry_base_s: float = 5.0
    retry_max_s: float = 3600.0
    give_up_s: float = 3 * 86400.0
    # Delivered rows are deleted this long after delivery (checked every PRUNE_EVERY_S by `run`).
    keep_delivered_s: float = 7 * 86400.0
    batch: int = 32

    def backoff(self, attempts: int, rng: random.Random) -> float:
        """Seconds before try `attempts + 1`: the exponential step, of which a random half is jitter (so
        that the retries of many events failing together spread out instead of arriving together)."""
        step = backoff_step(attempts, base_s=self.retry_base_s, max_s=self.retry_max_s)
        return step / 2 + rng.uniform(0, step / 2)


@dataclass(frozen=True)
class Claimed:
    id: int
    event_id: str
    event_type: str
    url: str
    secret: str
    body: str
    attempts: int
    retry_since: datetime


def claim_due(*, session: Session, now: datetime, limit: int, lease: timedelta) -> list[Claimed]:
    """Claims up to `limit` due rows (see the module docstring); the caller commits."""
    d = WebhookDelivery
    earlier = aliased(WebhookDelivery)
    held_back = exists().where(
        earlier.endpoint_id == d.endpoint_id,
        earlier.ticket == d.ticket,
        earlier.state == DeliveryState.PENDING,
        earlier.id < d.id,
    )
    stmt = (
        select(
            d.id,
            d.event_id,
            d.event_type,
            d.body,
            d.attempts,
            d.retry_since,
            WebhookEndpoint.url,
            WebhookEndpoint.secret,
        )
        .join(WebhookEndpoint, WebhookEndpoint.id == d.endpoint_id)
        .where(d.state == DeliveryState.PENDING, d.next_attempt_at <= now, ~held_back)
        .order_by(d.id)
        .limit(limit)
    )
    if is_postgresql(session):
        stmt = stmt.with_for_update(skip_locked=True, of=d)
    claimed: list[Claimed] = []
    for row in session.execute(stmt).all():
        taken = session.execute(
            update(d)
            .where(d.id == row.id, d.state == DeliveryState.PENDING, d.next_attempt_at <= now)
            .values(attempts=d.attempts + 1, next_attempt_at=now + lease)
            .returning(d.id)
        ).one_or_none()
        if taken is not None:
            claimed.append(
                Claimed(
                    id=row.id,
                    event_id=row.event_id,
                    event_type=row.event_type,
                    url=row.url,
                    secret=row.secret,
                    body=row.body,
                    attempts=row.attempts + 1,
                    retry_since=row.retry_since,
                )
            )
    return claimed


def record_outcomes(
    *,
    session: Session,
    outcomes: Sequence[tuple[Claimed, str | None]],
    policy: RetryPolicy,
    rng: random.Random,
    now: datetime,
) -> None:
    """Delivered (error None), retry later, or dead; the caller commits."""
    d = WebhookDelivery
    for claimed, error in outcomes:
        pending = (d.id == claimed.id, d.state == DeliveryState.PENDING)
        if error is None:
            session.execute(
                update(d)
                .where(*pending)
                .values(state=DeliveryState.DELIVERED, delivered_at=now, last_error=None)
            )
            WEBHOOK_SENDS.labels("delivered").inc()
            continue
        retry_at = now + timedelta(seconds=policy.backoff(claimed.attempts, rng))
        dead = retry_at - claimed.retry_since > timedelta(seconds=policy.give_up_s)
        session.execute(
            update(d)
            .where(*pending)
            .values(
                state=DeliveryState.DEAD if dead else DeliveryState.PENDING,
                next_attempt_at=now if dead else retry_at,
                last_error=error[:MAX_ERROR_CHARS],
            )
        )
        WEBHOOK_SENDS.labels("dead" if dead else "retry").inc()
        if dead:
            log.warning(
                "webhook delivery %d (%s) is dead after %d attempts: %s",
                claimed.id,
                claimed.event_type,
                claimed.attempts,
                error,
            )


class WebhookWorker:
    """Delivers the outbox; several may run on one database (replicas), each row goes to one of them."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        policy: RetryPolicy,
        *,
        client: httpx.AsyncClient | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._sessions = sessions
        self._policy = policy
        # No redirects (a receiver's 3xx is not a delivery), no proxy or .netrc from the environment.
        self._client = client or httpx.AsyncClient(follow_redirects=False, trust_env=False)
        self._rng = rng or random.Random()
        self._lease = timedelta(seconds=policy.timeout_s + LEASE_MARGIN_S)

    async def _send(self, claimed: Claimed) -> str | None:
        """None when the receiver answered 2xx, else why not (a status, a timeout, an error name)."""
        body = claimed.body.encode("utf-8")
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            SIGNATURE_HEADER: signature(claimed.secret, int(time.time()), body),
            EVENT_ID_HEADER: claimed.event_id,
            EVENT_TYPE_HEADER: claimed.event_type,
        }
        timeout = self._policy.timeout_s
        try:
            response = await asyncio.wait_for(
                self._client.post(claimed.url, content=body, headers=headers, timeout=timeout), timeout
            )
        except (TimeoutError, httpx.TimeoutException):
            return f"timed out after {timeout:g}s"
        except httpx.HTTPError as exc:
            return f"{exc.__class__.__name__}: {exc}"
        if 200 <= response.status_code < 300:
            return None
        return f"HTTP {response.status_code}"

    async def deliver_due(self) -> int:
        """One pass; returns how many events it tried to send."""
        policy = self._policy
        claimed = await asyncio.to_thread(
            run_in_transaction,
            self._sessions,
            lambda s: claim_due(session=s, now=utcnow(), limit=policy.batch, lease=self._lease),
        )
        if not claimed:
            return 0
        errors = await asyncio.gather(*(self._send(c) for c in claimed))
        outcomes = list(zip(claimed, errors, strict=True))
        await asyncio.to_thread(
            run_in_transaction,
            self._sessions,
            lambda s: record_outcomes(
                session=s, outcomes=outcomes, policy=policy, rng=self._rng, now=utcnow()
            ),
        )
        return len(claimed)

    async def prune(self) -> int:
        """Deletes rows delivered longer ago than the policy keeps them; returns how many."""
        keep = timedelta(seconds=self._policy.keep_delivered_s)
        return await asyncio.to_thread(
            run_in_transaction, self._sessions, lambda s: prune_delivered(session=s, older_than=keep)
        )

    async def run(self, *, interval_s: float) -> None:
        """Until cancelled (`gateway.ops.periodic.repeat`). Old delivered rows are pruned about hourly."""
        next_prune = time.monotonic()

        async def one_pass() -> int:
            nonlocal next_prune
            if time.monotonic() >= next_prune:
                next_prune = time.monotonic() + PRUNE_EVERY_S
                pruned = await self.prune()
                if pruned:
                    log.info("webhooks: pruned %d delivered event(s) from the outbox", pruned)
            return await self.deliver_due()

        await repeat(
            one_pass,
            interval_s=interval_s,
            what="webhook delivery pass",
            logger=log,
            batch=self._policy.batch,
        )

    async def aclose(self) -> None:
        await self._client.aclose()
