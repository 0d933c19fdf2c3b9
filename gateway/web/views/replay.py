"""The admins' Replay button: regenerate an item's output and re-moderate it, in the server process.

``POST /items/{id}/replay`` runs the ``replay`` callable the server handed to ``create_app``
(``gateway.pipeline.replay.replay`` bound to the running generator, batcher and moderator). It is awaited
on the event loop: the generation is queued on the batcher's thread like any client request, so other
pages keep being served while it runs. The page is then rendered with the outcome (identical, or
DIFFERENT with the listed differences and notes). The outcome never quotes the replayed text, and the
page shows none: a replay must not become a way around the review."""

from __future__ import annotations

import asyncio
import logging
import time

from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response

from gateway.errors import NotFound, Unavailable
from gateway.storage.models import Reviewer
from gateway.web import present
from gateway.web.views.review import ItemPage, item_id_of, visible_item

log = logging.getLogger(__name__)

# The demo model replays in well under a second and GPT-Neo 1.3B on a CPU in tens of seconds; a replay
# stuck behind a full batcher queue for longer than this is given up (its generation is cancelled).
REPLAY_TIMEOUT_S = 300.0


class ReplayTimedOut(Unavailable):
    """The replay did not finish in time (the generation queue is busy); nothing was changed."""


class ReplayItem(ItemPage):
    admin_only = True

    async def post(self, request: Request) -> Response:
        item_id = item_id_of(request)

        def work(session: Session, reviewer: Reviewer) -> str:
            ticket = visible_item(session, reviewer, item_id).output.ticket
            if not ticket:
                raise NotFound("this output has no ticket, so there is nothing to replay")
            return ticket

        ticket = await self.db(request, work)  # checks the admin role first, so reviewers get a 403
        replay = self.ctx.replay
        if replay is None:
            raise NotFound("replay is not available here: this web app runs without the gateway's model")
        principal = request.scope.get("modgate.principal")
        username = getattr(principal, "username", "?")
        started = time.perf_counter()
        try:
            report = await asyncio.wait_for(replay(ticket, actor=f"reviewer:{username}"), REPLAY_TIMEOUT_S)
        except TimeoutError:
            raise ReplayTimedOut(
                f"the replay did not finish within {REPLAY_TIMEOUT_S:.0f} s (the generation queue is busy); "
                "nothing was changed, try again later"
            ) from None
        outcome = present.ReplayView.of(report, time.perf_counter() - started)
        log.info(
            "replay of %s by %s: %s (%d decision differences)",
            ticket,
            username,
            "identical" if outcome.identical else "different",
            len(outcome.differences),
        )
        return await self.item_page(request, item_id, replay=outcome)
