"""Reading the reviewed result of a held output: what GetResult and WatchResult share.

A caller reads only its own tenant's tickets (another tenant's ticket is NOT_FOUND, as if it did not
exist), and text only once a reviewer approved or edited it. Every read is audited.

Each GetResult, Appeal and WatchResult takes one request from the key's requests-per-minute bucket, the
one generation calls draw on, so a key's total traffic has one bound. A watch is bounded too (`Watches`):
in time, in number per key, and by its key staying valid; its polls read without taking a write lock.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from gateway.audit import append, events
from gateway.errors import GatewayError, InvalidArgument, NotFound, ResourceExhausted, Unauthenticated
from gateway.pipeline.callers import Caller
from gateway.pipeline.ratelimit import Limiter, RateLimiter
from gateway.pipeline.ratelimit import Limits as RateLimits
from gateway.review import appeals
from gateway.review.queue import ResultState, ResultView, get_result
from gateway.storage.apikeys import get_key
from gateway.storage.tx import in_read_only, in_transaction

MAX_TICKET_LENGTH = 64
# What `new_ticket` makes ("tkt_" + hex) fits; anything else (NUL, which PostgreSQL refuses in a query
# parameter, control characters) is a malformed ticket, not a database error.
_TICKET = re.compile(r"[A-Za-z0-9_-]+")


def _check_ticket(ticket: str) -> None:
    if not ticket or len(ticket) > MAX_TICKET_LENGTH:
        raise InvalidArgument("ticket", f"must be 1 to {MAX_TICKET_LENGTH} characters")
    if not _TICKET.fullmatch(ticket):
        raise InvalidArgument("ticket", "may hold only letters, digits, '_' and '-'")


def _check_reason(reason: str) -> None:
    if "\x00" in reason:
        raise InvalidArgument("reason", "must not contain NUL characters")


class WatchExpired(GatewayError):
    """A watch reached `Watches.max_s` before a decision: the client calls WatchResult again."""

    grpc_status = "DEADLINE_EXCEEDED"
    http_status = 504


@dataclass(frozen=True)
class Watches:
    """Bounds on WatchResult (settings `watch_max_s`, `watch_max_per_key`, `watch_recheck_s`)."""

    max_s: float = 600.0
    per_key: int = 8
    recheck_s: float = 30.0


def _check_key_live(session: Session, *, key_id: str) -> None:
    """A watch outlives the authentication of its call: a key revoked (or deleted) since stops it."""
    try:
        key = get_key(session=session, key_id=key_id)
    except NotFound:
        key = None
    if key is None or key.revoked_at is not None:
        raise Unauthenticated("this API key was revoked; the watch has ended")


class ResultReader:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        poll_interval_s: float = 0.5,
        limiter: Limiter | None = None,
        default_limits: RateLimits | None = None,
        watches: Watches | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`limiter` and `default_limits`: the generation pipeline's, so that result calls and generation
        calls of a key share its requests-per-minute bucket."""
        self._sessions = sessions
        self._poll = poll_interval_s
        self._limiter = limiter if limiter is not None else RateLimiter()
        self._default_limits = default_limits or RateLimits()
        self._watches = watches or Watches()
        self._clock = clock
        self._watching: collections.Counter[str] = collections.Counter()  # per rate key; loop thread only

    async def _take_request(self, caller: Caller) -> None:
        """One request from the key's requests-per-minute bucket (RESOURCE_EXHAUSTED with a retry delay
        when empty). Tokens are a generation quota: a result call takes none."""
        limits = self._default_limits.overridden(
            requests_per_minute=caller.requests_per_minute, tokens_per_minute=caller.tokens_per_minute
        )
        if limits.requests_per_minute:
            requests_only = RateLimits(requests_per_minute=limits.requests_per_minute)
            await asyncio.to_thread(self._limiter.admit, caller.rate_key, requests_only, tokens=0)

    async def get(self, ticket: str, caller: Caller) -> ResultView:
        """GetResult: `read`, rate-limited."""
        _check_ticket(ticket)
        await self._take_request(caller)
        return await self.read(ticket, caller)

    async def read(self, ticket: str, caller: Caller) -> ResultView:
        _check_ticket(ticket)

        def work(session: Session) -> ResultView:
            view = get_result(session=session, ticket=ticket, tenant=caller.tenant)
            append(
                session=session,
                event_type=events.RESULT_READ,
                actor=caller.actor,
                tenant=caller.tenant,
                request_id=view.request_id,
                ticket=ticket,
                action=view.state.value,
                payload={"text_delivered": view.text is not None},
            )
            return view

        return await in_transaction(self._sessions, work)

    async def appeal(self, ticket: str, reason: str, caller: Caller) -> ResultView:
        _check_ticket(ticket)
        _check_reason(reason)
        await self._take_request(caller)

        def work(session: Session) -> ResultView:
            appeals.appeal(
                session=session,
                ticket=ticket,
                tenant=caller.tenant,
                reason=reason,
                actor=caller.actor,
            )
            return get_result(session=session, ticket=ticket, tenant=caller.tenant)

        return await in_transaction(self._sessions, work)

    async def watch(self, ticket: str, caller: Caller) -> AsyncIterator[ResultView]:
        """The state now, then each change; ends after a reviewer's decision (a blocked output is watched
        through its appeal). Polls, so that it works the same with several gateway replicas.

        Bounded: at most `Watches.per_key` at once per key (RESOURCE_EXHAUSTED), `Watches.max_s` long
        (then WatchExpired: watch again), and the key is re-checked every `Watches.recheck_s`."""
        _check_ticket(ticket)
        slot = caller.rate_key
        if self._watching[slot] >= self._watches.per_key:
            raise ResourceExhausted(
                f"this API key already has {self._watches.per_key} WatchResult calls open on this gateway; "
                "end one, or poll with GetResult"
            )
        self._watching[slot] += 1  # before any await: two watches starting at once both count
        try:
            await self._take_request(caller)
            async for view in self._watch(ticket, caller):
                yield view
        finally:
            self._watching[slot] -= 1
            if not self._watching[slot]:
                del self._watching[slot]

    async def _watch(self, ticket: str, caller: Caller) -> AsyncIterator[ResultView]:
        started = self._clock()
        deadline = started + self._watches.max_s
        next_check = started + self._watches.recheck_s
        last: ResultState | None = None
        while True:
            view = await self.read(ticket, caller) if last is None else await self._peek(ticket, caller)
            if view.state != last:
                if last is not None and view.state not in (ResultState.PENDING, ResultState.BLOCKED):
                    view = await self.read(ticket, caller)  # the read that delivers text is audited
                yield view
                last = view.state
            if view.state not in (ResultState.PENDING, ResultState.BLOCKED):
                return
            now = self._clock()
            if now >= deadline:
                raise WatchExpired(
                    f"WatchResult ends after {self._watches.max_s:g} s; the result is still "
                    f"{view.state.value}: call WatchResult again"
                )
            if caller.key_id is not None and now >= next_check:
                await in_read_only(self._sessions, functools.partial(_check_key_live, key_id=caller.key_id))
                next_check = now + self._watches.recheck_s
            await asyncio.sleep(min(self._poll, max(0.0, deadline - now)))

    async def _peek(self, ticket: str, caller: Caller) -> ResultView:
        """An unaudited poll (the state only, never text): a read-only transaction."""
        return await in_read_only(
            self._sessions, lambda s: get_result(session=s, ticket=ticket, tenant=caller.tenant)
        )
