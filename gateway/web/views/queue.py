"""The queue page: counts by state, the open items (sortable), and "Review next".

The live part of the page (counts and rows) is one partial template, rendered both inside the page and
alone at ``/queue/rows``, which ``static/queue.js`` polls to show new items without a reload. Items
are handed out by :func:`gateway.review.queue.claim_next` (most urgent first), never picked by hand:
two reviewers can then never work on the same item.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.errors import InvalidArgument
from gateway.review import queue
from gateway.storage.models import Reviewer
from gateway.web import data
from gateway.web.base import BaseView


def _sorting(request: Request) -> tuple[str, bool]:
    sort = request.query_params.get("sort", "priority")
    if sort not in data.SORTS:
        raise InvalidArgument("sort", f"must be one of {', '.join(data.SORTS)}")
    direction = request.query_params.get("dir", "desc")
    if direction not in ("asc", "desc"):
        raise InvalidArgument("dir", "must be asc or desc")
    return sort, direction == "desc"


class _QueueView(BaseView):
    def rows(self, sort: str, descending: bool) -> Callable[[Session, Reviewer], data.QueueView]:
        def work(session: Session, reviewer: Reviewer) -> data.QueueView:
            return data.queue_view(
                session,
                reviewer,
                sort=sort,
                descending=descending,
                deadlines=self.ctx.deadlines,
                consensus=self.ctx.consensus,
            )

        return work


class QueuePage(_QueueView):
    async def get(self, request: Request) -> Response:
        sort, descending = _sorting(request)

        view = await self.db(request, self.rows(sort, descending))
        return self.render(request, "queue.html", {"view": view, "poll_seconds": 5})


class QueueRows(_QueueView):
    """The live region alone (HTML partial), or the same facts as JSON with ``Accept: application/json``."""

    async def get(self, request: Request) -> Response:
        sort, descending = _sorting(request)

        view = await self.db(request, self.rows(sort, descending))
        if "application/json" in request.headers.get("accept", ""):
            return JSONResponse(
                {
                    "counts": view.counts,
                    "items": [
                        {
                            "id": r.id,
                            "ticket": r.ticket,
                            "tenant": r.tenant,
                            "state": r.state,
                            "escalated": r.escalated,
                            "created_at": r.created_at.isoformat(),
                            "due": r.due,
                            "verdicts": r.verdicts,
                        }
                        for r in view.rows
                    ],
                }
            )
        return self.render(request, "_queue_partial.html", {"view": view})


class ClaimNext(BaseView):
    """POST: claim the most urgent item this reviewer may see, and open it."""

    async def post(self, request: Request) -> Response:
        lease = self.ctx.lease_seconds

        def work(session: Session, reviewer: Reviewer) -> str | None:
            item = queue.claim_next(session=session, reviewer=reviewer, lease_seconds=lease)
            return item.id if item is not None else None

        item_id = await self.db(request, work)
        if item_id is None:
            return self.redirect(request, "/queue", flash="Nothing to review right now.")
        return self.redirect(request, f"/items/{item_id}")
