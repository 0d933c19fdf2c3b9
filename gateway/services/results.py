"""Reading the reviewed result of a held output: what GetResult and WatchResult share.

A caller reads only its own tenant's tickets (another tenant's ticket is NOT_FOUND, as if it did not
exist), and text only once a reviewer approved or edited it. Every read is audited.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

from sqlalchemy.orm import Session, sessionmaker

from gateway.audit import append, events
from gateway.auth import Caller
from gateway.errors import InvalidArgument
from gateway.review import appeals
from gateway.review.queue import ResultState, ResultView, get_result
from gateway.storage.tx import in_transaction

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


def caller_actor(caller: Caller) -> str:
    return f"key:{caller.key_id}" if caller.key_id else f"tenant:{caller.tenant}"


class ResultReader:
    def __init__(self, sessions: sessionmaker[Session], *, poll_interval_s: float = 0.5) -> None:
        self._sessions = sessions
        self._poll = poll_interval_s

    async def read(self, ticket: str, caller: Caller) -> ResultView:
        _check_ticket(ticket)

        def work(session: Session) -> ResultView:
            view = get_result(session=session, ticket=ticket, tenant=caller.tenant)
            append(
                session=session,
                event_type=events.RESULT_READ,
                actor=caller_actor(caller),
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

        def work(session: Session) -> ResultView:
            appeals.appeal(
                session=session,
                ticket=ticket,
                tenant=caller.tenant,
                reason=reason,
                actor=caller_actor(caller),
            )
            return get_result(session=session, ticket=ticket, tenant=caller.tenant)

        return await in_transaction(self._sessions, work)

    async def watch(self, ticket: str, caller: Caller) -> AsyncIterator[ResultView]:
        """The state now, then each change; ends after a reviewer's decision (a blocked output is watched
        through its appeal). Polls, so that it works the same with several gateway replicas."""
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
            await asyncio.sleep(self._poll)

    async def _peek(self, ticket: str, caller: Caller) -> ResultView:
        return await in_transaction(
            self._sessions, lambda s: get_result(session=s, ticket=ticket, tenant=caller.tenant)
        )
