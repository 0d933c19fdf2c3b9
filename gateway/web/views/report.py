"""The policy report page (admins only): what reviewers' verdicts say about the policies' thresholds.

The numbers are ``moderation.report.build_report`` over ``gateway.review.report_data.reviewed_outputs``
and ``qa_labels`` (the miss rate of the QA-sampled policies, ``[review.qa]``),
exactly what ``modgate policy report`` prints, with the thresholds of the policies this gateway runs. The
plot is ``render_svg`` served at its own URL (``/admin/policy-report.svg`` with the same filters) and
shown with ``<img>``: the SVG is a standalone document the page never inlines, so no markup built from
data ever enters the page, and as an image it cannot run anything whatever it contains.

Reading the window costs one pass over the score columns of its outputs (never the texts), in the
database thread; the page and its image each make that pass, so a window of millions of outputs is
better narrowed with the filters (or read with the CLI).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response

from gateway import fields
from gateway.errors import InvalidArgument
from gateway.review.report_data import qa_labels, rated_items, reviewed_outputs
from gateway.storage.models import Reviewer
from gateway.timewindow import check_window
from gateway.web.base import BaseView
from gateway.web.views.audit import local_time, parse_time
from moderation.report import UNREVIEWED, PolicyReport, build_report
from moderation.report_render import render_svg

DEFAULT_TARGET_RATE = 0.01
MAX_TENANT_CHARS = 128
SVG_MEDIA_TYPE = "image/svg+xml"
_YES, _NO = ("1", "on", "true"), ("", "0", "off", "false")


@dataclass(frozen=True)
class ReportFilters:
    """The report's window and settings, as parsed from the query string (the form is a GET)."""

    since: datetime | None
    until: datetime | None
    tenant: str | None
    target_rate: float
    edited_counts_as_rejected: bool

    def form_values(self) -> dict[str, str]:
        """The filters as the form shows them and as the image URL carries them on."""
        return {
            "since": local_time(self.since),
            "until": local_time(self.until),
            "tenant": self.tenant or "",
            "target_rate": f"{self.target_rate:g}",
            "edited": "1" if self.edited_counts_as_rejected else "",
        }

    def query(self) -> str:
        params = {k: v for k, v in self.form_values().items() if v}
        return "?" + urlencode(params)


def parse_filters(request: Request) -> ReportFilters:
    """Every filter checked; a bad one is a 400 that names it."""
    q = request.query_params
    since = parse_time("since", q.get("since", "").strip())
    until = parse_time("until", q.get("until", "").strip())
    check_window(since, until)
    tenant = fields.text("tenant", q.get("tenant", "").strip(), max_chars=MAX_TENANT_CHARS) or None
    raw_rate = q.get("target_rate", "").strip()
    try:
        target_rate = float(raw_rate) if raw_rate else DEFAULT_TARGET_RATE
    except ValueError:
        target_rate = math.nan
    if not 0.0 < target_rate < 1.0:  # NaN fails this too
        raise InvalidArgument("target_rate", "must be a number between 0 and 1 (exclusive), e.g. 0.01 for 1%")
    edited = q.get("edited", "").strip().lower()
    if edited not in _YES + _NO:
        raise InvalidArgument("edited", "must be 1 or left out")
    return ReportFilters(since, until, tenant, target_rate, edited in _YES)


class _ReportView(BaseView):
    admin_only = True

    async def report(self, request: Request) -> tuple[ReportFilters, PolicyReport]:
        filters = parse_filters(request)
        policies, qa_policies = self.ctx.policies, tuple(self.ctx.qa_rates)

        def work(session: Session, reviewer: Reviewer) -> PolicyReport:
            since, until, tenant = filters.since, filters.until, filters.tenant
            outputs = reviewed_outputs(session=session, since=since, until=until, tenant=tenant)
            labels = qa_labels(session=session, since=since, until=until, tenant=tenant)
            return build_report(
                outputs,
                target_rate=filters.target_rate,
                policies=policies,
                edited_counts_as_rejected=filters.edited_counts_as_rejected,
                rated=rated_items(session=session, since=since, until=until, tenant=tenant),
                qa_labels=labels,
                qa_policies=qa_policies,
            )

        return filters, await self.db(request, work)


class PolicyReportPage(_ReportView):
    """GET /admin/policy-report: filters, the per-(policy, category) table, the shadow counts, the plot."""

    async def get(self, request: Request) -> Response:
        filters, report = await self.report(request)
        context: dict[str, Any] = {
            "report": report,
            "values": filters.form_values(),
            "filters": filters,
            "svg_url": "/admin/policy-report.svg" + filters.query(),
            "unreviewed": UNREVIEWED,
        }
        return self.render(request, "policy_report.html", context)


class PolicyReportSvg(_ReportView):
    """GET /admin/policy-report.svg: the plot for the same filters (a standalone, escaped SVG)."""

    async def get(self, request: Request) -> Response:
        _, report = await self.report(request)
        return Response(render_svg(report), media_type=SVG_MEDIA_TYPE)
