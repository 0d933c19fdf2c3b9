"""The audit page (admins only): filtered, keyset-paged events; CSV export; chain verification.

Paging follows :func:`gateway.audit.query`: ``after_id`` is the last id of the page before, so pages
stay stable while events are appended. The export streams the whole filtered log in pages of
:data:`gateway.audit.MAX_LIMIT`, each read in its own short transaction. Verifying the chain reads the
whole log, so the page asks for it separately (``/api/audit/verify``) instead of making every page
view pay for it; it checks the chain against the server's newest anchor (gateway/audit/keeper.py).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from gateway import fields
from gateway.audit import MAX_LIMIT, VerifyResult, events, query, verify
from gateway.audit.anchor import Anchor
from gateway.audit.export import defuse_formula, payload_json
from gateway.errors import InvalidArgument
from gateway.storage.models import AuditEvent, Reviewer
from gateway.timewindow import check_window
from gateway.web.base import BaseView

PAGE_SIZE = 50
TEXT_FILTERS = ("tenant", "actor", "ticket", "request_id")
EVENT_TYPES = sorted(events.ALL_EVENT_TYPES)
EVENT_FAMILIES = sorted({t.split(".", 1)[0] + ".*" for t in events.ALL_EVENT_TYPES})
CSV_COLUMNS = ("id", "created_at", "event_type", "actor", "tenant", "request_id", "ticket", "action")


@dataclass(frozen=True)
class AuditFilters:
    since: datetime | None
    until: datetime | None
    event_type: str | None
    text: dict[str, str]
    after_id: int | None

    def query_args(self) -> dict[str, Any]:
        return {
            "since": self.since,
            "until": self.until,
            "event_type": self.event_type,
            "after_id": self.after_id,
            **self.text,
        }

    def form_values(self) -> dict[str, str]:
        """The filters as the form shows them (and as links carry them on)."""
        values = {
            "since": local_time(self.since),
            "until": local_time(self.until),
            "event_type": self.event_type or "",
        }
        values.update({name: self.text.get(name, "") for name in TEXT_FILTERS})
        return values

    def link(self, **changes: Any) -> str:
        params = {k: v for k, v in {**self.form_values(), **changes}.items() if v not in ("", None)}
        return "?" + urlencode(params) if params else "?"


def local_time(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M") if value is not None else ""


def parse_time(name: str, raw: str) -> datetime | None:
    """An ISO date/time; without an offset (what a datetime-local input sends) it is taken as UTC."""
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise InvalidArgument(name, "must be a date and time like 2026-11-23T14:05 (UTC)") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def parse_filters(request: Request) -> AuditFilters:
    q = request.query_params
    event_type = q.get("event_type", "").strip() or None
    known = event_type in events.ALL_EVENT_TYPES or event_type in EVENT_FAMILIES
    if event_type is not None and not known:
        raise InvalidArgument("event_type", "is not a known event type or family")
    text: dict[str, str] = {}
    for name in TEXT_FILTERS:
        value = fields.text(name, q.get(name, "").strip())
        if value:
            text[name] = value
    after_raw = q.get("after_id", "").strip()
    if after_raw and not (after_raw.isdigit() and len(after_raw) <= 18):
        raise InvalidArgument("after_id", "must be a non-negative whole number")
    since = parse_time("since", q.get("since", "").strip())
    until = parse_time("until", q.get("until", "").strip())
    check_window(since, until)
    return AuditFilters(since, until, event_type, text, int(after_raw) if after_raw else None)


@dataclass(frozen=True)
class EventRow:
    id: int
    created_at: datetime
    event_type: str
    actor: str
    tenant: str | None
    request_id: str | None
    ticket: str | None
    action: str | None
    payload: str

    @classmethod
    def of(cls, e: AuditEvent) -> EventRow:
        payload = json.dumps(e.payload, ensure_ascii=False, sort_keys=True, separators=(", ", ": "))
        return cls(
            e.id, e.created_at, e.event_type, e.actor, e.tenant, e.request_id, e.ticket, e.action, payload
        )


class AuditPage(BaseView):
    admin_only = True

    async def get(self, request: Request) -> Response:
        filters = parse_filters(request)

        def work(session: Session, reviewer: Reviewer) -> list[EventRow]:
            return [EventRow.of(e) for e in query(session=session, **filters.query_args(), limit=PAGE_SIZE)]

        rows = await self.db(request, work)
        context = {
            "rows": rows,
            "filters": filters,
            "values": filters.form_values(),
            "event_types": EVENT_TYPES,
            "event_families": EVENT_FAMILIES,
            "next_link": filters.link(after_id=rows[-1].id) if len(rows) == PAGE_SIZE else None,
            "first_link": filters.link() if filters.after_id is not None else None,
            "csv_link": "/audit.csv" + filters.link(),
        }
        return self.render(request, "audit.html", context)


def _csv_cell(value: Any) -> str:
    """Text for a spreadsheet cell, formulas defused (`gateway.audit.export`)."""
    return str(defuse_formula("" if value is None else str(value)))


class AuditCsv(BaseView):
    admin_only = True

    async def get(self, request: Request) -> Response:
        filters = parse_filters(request)
        # Checks the role (and the filters) now, before the 200 and the first byte are sent.
        await self.db(request, lambda session, reviewer: None)

        async def rows() -> AsyncIterator[str]:
            buffer = io.StringIO()
            writer = csv.writer(buffer)
            writer.writerow([*CSV_COLUMNS, "payload", "prev_hash", "hash"])
            after = filters.after_id
            while True:
                args = {**filters.query_args(), "after_id": after}

                def page(session: Session, _: Reviewer, args: dict[str, Any] = args) -> list[list[str]]:
                    return [
                        [
                            *(_csv_cell(getattr(e, c)) for c in CSV_COLUMNS[:1]),
                            e.created_at.isoformat(),
                            *(_csv_cell(getattr(e, c)) for c in CSV_COLUMNS[2:]),
                            _csv_cell(payload_json(e.payload)),
                            e.prev_hash,
                            e.hash,
                        ]
                        for e in query(session=session, **args, limit=MAX_LIMIT)
                    ]

                batch = await self.db(request, page)
                writer.writerows(batch)
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
                if len(batch) < MAX_LIMIT:
                    return
                after = int(batch[-1][0])

        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        return StreamingResponse(
            rows(),
            media_type="text/csv; charset=utf-8",
            headers={"content-disposition": f'attachment; filename="modgate-audit-{stamp}.csv"'},
        )


class AuditVerify(BaseView):
    """GET /api/audit/verify: walk the whole chain, checking that it still holds the newest anchor the
    server knows (its own memory, else the anchor file; never the database it protects); JSON with the
    first bad row if there is one, and which anchor was used (``anchor_id`` null: none, so a truncated
    or rewritten log cannot be told from an intact one)."""

    admin_only = True

    async def get(self, request: Request) -> Response:
        keeper = self.ctx.anchors

        def work(session: Session, reviewer: Reviewer) -> tuple[Anchor | None, VerifyResult]:
            anchor = keeper.latest() if keeper is not None else None
            return anchor, verify(session=session, anchor=anchor.head if anchor is not None else None)

        anchor, result = await self.db(request, work)
        return JSONResponse(
            {
                "anchoring": keeper is not None,
                "anchor_id": anchor.head_id if anchor is not None else None,
                "ok": result.ok,
                "checked": result.checked,
                "first_bad_id": result.first_bad_id,
                "problem": result.problem,
                "head_id": result.head_id,
                "head_hash": result.head_hash,
            }
        )
