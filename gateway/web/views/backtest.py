"""The policy backtest page (admins only): paste or upload a proposed policy, see what it would have done.

The numbers are ``moderation.backtest.backtest`` over ``gateway.review.backtest_data.recorded_outputs``,
exactly what ``modgate policy backtest`` prints, with ``extends`` resolved against the policies this
gateway runs. The form is a POST (a policy file does not fit a URL, and CSRF covers it like every form);
a mistake in it re-renders the form with a 400 that names the problem and keeps what was typed, so a
pasted policy is never lost to a typo.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import Response

from gateway import fields
from gateway.errors import InvalidArgument
from gateway.review.backtest_data import Window, recorded_outputs, undecided_count
from gateway.storage.models import Reviewer
from gateway.timewindow import check_window
from gateway.web.base import BaseView
from gateway.web.views.audit import parse_time
from gateway.web.views.report import MAX_TENANT_CHARS
from moderation.backtest import (
    ACTIONS,
    MAX_PROPOSAL_CHARS,
    VERDICTS,
    BacktestReport,
    backtest,
    proposal_from_toml,
)
from moderation.config import ModerationConfigError
from moderation.policy import Policy

MAX_NAME_CHARS = 128  # GenerationOutput.policy_name
TEMPLATE = "policy_backtest.html"


@dataclass(frozen=True)
class BacktestForm:
    """What the admin asked for, checked, with the raw values kept to show the form again."""

    values: dict[str, str]
    window: Window
    proposal: Policy


def _text(form: FormData, name: str) -> str:
    value = form.get(name, "")
    return value.strip() if isinstance(value, str) else ""


async def _policy_text(form: FormData) -> str:
    """The uploaded file when one was chosen, else the pasted text; both bounded."""
    upload = form.get("policy_file")
    if isinstance(upload, UploadFile) and upload.filename:
        raw = await upload.read(4 * MAX_PROPOSAL_CHARS + 1)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidArgument("policy_file", "must be a UTF-8 text (TOML) file") from None
    else:
        pasted = form.get("policy", "")
        text = pasted if isinstance(pasted, str) else ""
    if len(text) > MAX_PROPOSAL_CHARS:
        raise InvalidArgument("policy", f"must be at most {MAX_PROPOSAL_CHARS} characters")
    if not text.strip():
        raise InvalidArgument("policy", "paste a policy table or choose a file")
    return text


def parse_form(values: dict[str, str], text: str, known: Mapping[str, Any]) -> BacktestForm:
    """Every field checked; a bad one raises InvalidArgument naming it."""
    name = fields.text("name", values["name"], max_chars=MAX_NAME_CHARS) or None
    since = parse_time("since", values["since"])
    if since is None:
        raise InvalidArgument("since", "is required: the backtest reads outputs created from then on")
    until = parse_time("until", values["until"])
    check_window(since, until)
    tenant = fields.text("tenant", values["tenant"], max_chars=MAX_TENANT_CHARS) or None
    try:
        proposal = proposal_from_toml(text, name=name or "proposal", known=known)
    except ModerationConfigError as exc:
        raise InvalidArgument("policy", str(exc)) from None
    return BacktestForm(values, Window(since=since, until=until, tenant=tenant, policy=name), proposal)


class PolicyBacktestPage(BaseView):
    """GET /admin/policy-backtest: the form. POST: the form again with the backtest's tables."""

    admin_only = True

    async def get(self, request: Request) -> Response:
        await self.db(request, lambda session, reviewer: None)  # the admin check
        values = {"name": "", "since": "", "until": "", "tenant": "", "policy": ""}
        return self._page(request, values, None, None)

    async def post(self, request: Request) -> Response:
        await self.db(request, lambda session, reviewer: None)  # refuse non-admins before reading more
        form = await request.form()  # parsed (and cached) by the CSRF check; closed here: it may hold a file
        values = {k: _text(form, k) for k in ("name", "since", "until", "tenant")}
        pasted = form.get("policy", "")
        values["policy"] = pasted[:MAX_PROPOSAL_CHARS] if isinstance(pasted, str) else ""
        try:
            text = await _policy_text(form)
            values["policy"] = text
            checked = parse_form(values, text, self.ctx.policies)
        except InvalidArgument as exc:
            return self._page(request, values, None, str(exc), status=400)
        finally:
            await form.close()

        def work(session: Session, reviewer: Reviewer) -> BacktestReport:
            return backtest(
                checked.proposal,
                recorded_outputs(session=session, window=checked.window),
                skipped=undecided_count(session=session, window=checked.window),
            )

        report = await self.db(request, work)
        return self._page(request, values, report, None)

    def _page(
        self,
        request: Request,
        values: dict[str, str],
        report: BacktestReport | None,
        error: str | None,
        status: int = 200,
    ) -> Response:
        context: dict[str, Any] = {
            "values": values,
            "report": report,
            "error": error,
            "actions": ACTIONS,
            "verdicts": VERDICTS,
            "known": sorted(self.ctx.policies),
            "max_chars": MAX_PROPOSAL_CHARS,
        }
        return self.render(request, TEMPLATE, context, status=status)
