"""The review page of one item, its decisions, escalation and the lease heartbeat.

Decisions are plain form posts (they work without JavaScript; the keyboard shortcuts only submit the
same forms). Each carries the item version the reviewer saw, so :func:`gateway.review.queue.decide`
refuses a decision on an item that changed meanwhile; the refusal reaches the reviewer as a 409 page
that says what happened (``gateway/web/errors.py``). The heartbeat is a fetch to ``/api/...`` that
renews the lease while the page is open.
"""

from __future__ import annotations

from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.errors import Forbidden, InvalidArgument
from gateway.review import queue
from gateway.storage.base import utcnow
from gateway.storage.models import Reviewer, ReviewItem
from gateway.web import data, present
from gateway.web.base import BaseView, form_fields, record_id_in_path
from gateway.web.consensus import ConsensusView, consensus_view

_PAST = {"approve": "Approved", "edit": "Edited and approved", "reject": "Rejected"}


def item_id_of(request: Request) -> str:
    return record_id_in_path(request, "item_id", "no such review item")


def visible_item(session: Session, reviewer: Reviewer, item_id: str) -> ReviewItem:
    """The item, if this reviewer may see it: escalated items are for admins only."""
    item = queue.get_item(session=session, item_id=item_id)
    if item.escalated and not reviewer.is_admin:
        raise Forbidden("this item was escalated: only an admin may open it")
    return item


class ItemPage(BaseView):
    async def get(self, request: Request) -> Response:
        return await self.item_page(request, item_id_of(request))

    async def item_page(
        self, request: Request, item_id: str, *, replay: present.ReplayView | None = None
    ) -> Response:
        """The review page of ``item_id``; ``replay`` adds the outcome of a replay just run (the replay
        view renders the page itself rather than redirecting: the outcome is not stored anywhere)."""
        policies, terms = self.ctx.policies, self.ctx.identity_terms

        consensus = self.ctx.consensus

        def work(session: Session, reviewer: Reviewer) -> tuple[data.ItemView, ConsensusView | None]:
            item = visible_item(session, reviewer, item_id)
            view = data.item_view(session, reviewer, item, policies, terms)
            return view, consensus_view(session, reviewer, item, consensus)

        view, verdicts = await self.db(request, work)
        context = {
            "item": view,
            "consensus": verdicts,
            "lease_seconds": self.ctx.lease_seconds,
            "lease_left": _seconds_left(view),
            "max_reason_chars": queue.MAX_REASON_CHARS,
            "replay_available": self.ctx.replay is not None,
            "replay": replay,
        }
        return self.render(request, "review.html", context)


def _seconds_left(view: data.ItemView) -> int:
    if view.lease_expires_at is None:
        return 0
    return max(0, int((view.lease_expires_at - utcnow()).total_seconds()))


class Decide(BaseView):
    async def post(self, request: Request) -> Response:
        item_id = item_id_of(request)
        fields = await form_fields(request, "decision", "version", "edited_text", "reason")
        decision = fields["decision"]
        if decision not in _PAST:
            raise InvalidArgument("decision", "must be approve, edit or reject")
        try:
            version = int(fields["version"])
        except ValueError:
            raise InvalidArgument("version", "must be the item version shown on the page") from None
        reason = " ".join(fields["reason"].split()) or None
        if decision == "reject" and reason is None:
            raise InvalidArgument("reason", "a rejection needs a reason")
        # Browsers send textarea line breaks as CRLF; the model's text uses LF.
        edited = fields["edited_text"].replace("\r\n", "\n") if decision == "edit" else None

        consensus = self.ctx.consensus

        def work(session: Session, reviewer: Reviewer) -> str:
            visible_item(session, reviewer, item_id)
            item = queue.decide(
                session=session,
                item_id=item_id,
                reviewer=reviewer,
                expected_version=version,
                decision=decision,
                edited_text=edited,
                reason=reason,
                consensus=consensus,
            )
            ticket = item.output.ticket or item.id
            if item.state not in queue.OPEN_STATES:
                return (
                    f"{_PAST[decision]} {ticket}." if item.decided_by else f"{ticket}: decided by consensus."
                )
            if item.escalated:
                return f"Verdict given on {ticket}; the verdicts disagree: escalated to the admins."
            return f"Verdict given on {ticket}; it goes to another reviewer."

        message = await self.db(request, work)
        return self.redirect(request, "/queue", flash=message, kind="success")


class Escalate(BaseView):
    """Hand a claimed item to the admins (back to pending, visible to admins only)."""

    async def post(self, request: Request) -> Response:
        item_id = item_id_of(request)
        reason = " ".join((await form_fields(request, "reason"))["reason"].split()) or None

        def work(session: Session, reviewer: Reviewer) -> str:
            item = queue.escalate(session=session, item_id=item_id, reviewer=reviewer, reason=reason)
            return item.output.ticket or item.id

        ticket = await self.db(request, work)
        return self.redirect(request, "/queue", flash=f"Escalated {ticket} to the admins.", kind="success")


class LeaseHeartbeat(BaseView):
    """POST /api/items/{id}/lease: extend the viewer's live claim; 409 with a reason when it is gone."""

    async def post(self, request: Request) -> Response:
        item_id = item_id_of(request)
        lease = self.ctx.lease_seconds

        def work(session: Session, reviewer: Reviewer) -> int:
            item = queue.renew_lease(session=session, item_id=item_id, reviewer=reviewer, lease_seconds=lease)
            assert item.lease_expires_at is not None
            return max(0, int((item.lease_expires_at - utcnow()).total_seconds()))

        seconds_left = await self.db(request, work)
        return JSONResponse({"item_id": item_id, "seconds_left": seconds_left, "lease_seconds": lease})
