"""``create_app``: the reviewer web queue as an ASGI app that tests can build without a server.

One view module per page family (``views/auth.py``, ``views/queue.py``, ``views/review.py``,
``views/replay.py``, ``views/audit.py``, ``views/report.py``, ``views/backtest.py``, ``views/qa.py``) on
:class:`gateway.web.base.BaseView`;
templates and assets are served by the app itself (no CDN: the CSP allows nothing but this origin).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from gateway.audit.keeper import AnchorKeeper
from gateway.config import Settings
from gateway.review.consensus import parse_consensus
from gateway.review.deadlines import parse_deadlines
from gateway.review.passwords import password_params
from gateway.review.qa import parse_qa
from gateway.review.queue import DEFAULT_LEASE_SECONDS
from gateway.web.base import ReplayFn, WebContext
from gateway.web.errors import install_handlers
from gateway.web.present import known_identity_terms
from gateway.web.security import LoginThrottle, SecurityHeadersMiddleware, SessionMiddleware
from gateway.web.views.audit import AuditCsv, AuditPage, AuditVerify
from gateway.web.views.auth import LoginView, LogoutView
from gateway.web.views.backtest import PolicyBacktestPage
from gateway.web.views.qa import LabelSample, QaNext, QaQueuePage, QaSamplePage
from gateway.web.views.queue import ClaimNext, QueuePage, QueueRows
from gateway.web.views.replay import ReplayItem
from gateway.web.views.report import PolicyReportPage, PolicyReportSvg
from gateway.web.views.review import Decide, Escalate, ItemPage, LeaseHeartbeat

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
MAX_BODY_BYTES = 1 << 20  # an edited text is far smaller; anything bigger is refused with 413


def _when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if value is not None else "-"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{float(value):.2f}"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{100 * float(value):.1f}%"


def _iso(value: datetime | None) -> str:
    return value.astimezone(UTC).isoformat(timespec="seconds") if value is not None else ""


def make_templates() -> Jinja2Templates:
    """Autoescaping on for every template, whatever its name; undefined names fail loudly in tests."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    env.filters["iso"] = _iso
    env.filters["score"] = lambda v: f"{float(v):.2f}"
    env.filters["pct"] = lambda v: max(0, min(100, round(float(v) * 100)))
    env.filters["num"] = _num  # like score, but "-" for a missing value (no threshold, no suggestion)
    env.filters["share"] = _share  # a share in [0, 1] as a percentage with one decimal; "-" for None
    return Jinja2Templates(env=env)


def session_secret(settings: Settings) -> str:
    """The configured secret, or a random one for this process (announced: sessions end at restart)."""
    if settings.session_secret:
        return settings.session_secret
    log.warning(
        "session_secret is not set: reviewer sessions are signed with a random per-process secret, "
        "so they end when the gateway restarts and are not shared between replicas "
        "(set MODGATE_SESSION_SECRET to keep them)"
    )
    return secrets.token_urlsafe(32)


async def _home(request: Request) -> Response:
    return RedirectResponse("/queue", status_code=303)


async def _healthz(request: Request) -> Response:
    return PlainTextResponse("ok")


def create_app(
    *,
    sessions: sessionmaker[Session],
    settings: Settings,
    policies: Mapping[str, Any] | None = None,
    lease_seconds: int = DEFAULT_LEASE_SECONDS,
    secret: str | None = None,
    replay: ReplayFn | None = None,
    identity_terms: Any = None,
    api_routes: Sequence[BaseRoute] = (),
    anchors: AnchorKeeper | None = None,
) -> Starlette:
    """The reviewer web app over the database behind ``sessions``.

    ``policies`` (name -> ``moderation.policy.Policy``) lets the review page draw a threshold for every
    category of an output judged by the same policy version, not only for those that fired, and gives
    the policy report the current thresholds. ``replay`` (``async (ticket) -> gateway.pipeline.replay.
    ReplayReport``, built by the server from its running generator, batcher and moderator) enables the
    admins' Replay button; without it the button is not shown. ``identity_terms`` (the moderator's
    ``moderation.identity.IdentityTerms``) lets the review page name each replaced term's substitute.
    ``secret`` overrides ``settings.session_secret`` (tests). ``api_routes``: the API front doors
    on this port (``POST /score``, the OpenAI-compatible ``/v1``), built by the server around its
    pipeline. ``anchors``
    (the server's :class:`gateway.audit.keeper.AnchorKeeper`) gives the audit page's verify the newest
    anchor, so that it detects a truncated or rewritten log too.
    """
    templates = make_templates()
    routes = [
        Route("/", _home, methods=["GET"]),
        Route("/healthz", _healthz, methods=["GET"]),
        Route("/login", LoginView, name="login"),
        Route("/logout", LogoutView, name="logout"),
        Route("/queue", QueuePage, name="queue"),
        Route("/queue/rows", QueueRows, name="queue_rows"),
        Route("/queue/claim", ClaimNext, name="claim_next"),
        Route("/items/{item_id}", ItemPage, name="item"),
        Route("/items/{item_id}/decide", Decide, name="decide"),
        Route("/items/{item_id}/escalate", Escalate, name="escalate"),
        Route("/items/{item_id}/replay", ReplayItem, name="replay"),
        Route("/api/items/{item_id}/lease", LeaseHeartbeat, name="lease"),
        Route("/qa", QaQueuePage, name="qa"),
        Route("/qa/next", QaNext, name="qa_next"),
        Route("/qa/{sample_id}", QaSamplePage, name="qa_sample"),
        Route("/qa/{sample_id}/label", LabelSample, name="qa_label"),
        Route("/audit", AuditPage, name="audit"),
        Route("/audit.csv", AuditCsv, name="audit_csv"),
        Route("/api/audit/verify", AuditVerify, name="audit_verify"),
        Route("/admin/policy-report", PolicyReportPage, name="policy_report"),
        Route("/admin/policy-report.svg", PolicyReportSvg, name="policy_report_svg"),
        Route("/admin/policy-backtest", PolicyBacktestPage, name="policy_backtest"),
        Mount("/static", app=StaticFiles(directory=HERE / "static"), name="static"),
    ]
    routes.extend(api_routes)
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(SecurityHeadersMiddleware),
            Middleware(
                SessionMiddleware,
                secret=secret or session_secret(settings),
                lifetime_s=settings.session_lifetime_s,
                idle_s=settings.session_idle_s,
            ),
        ],
        max_body_size=MAX_BODY_BYTES,
    )
    app.state.web = WebContext(
        sessions=sessions,
        templates=templates,
        lease_seconds=lease_seconds,
        policies=policies if policies is not None else {},  # a live view: follows activations
        throttle=LoginThrottle(),
        password_params=password_params(settings),
        replay=replay,
        identity_terms=known_identity_terms(identity_terms),
        anchors=anchors,
        deadlines=parse_deadlines(settings.review.get("deadlines", {})),
        consensus=parse_consensus(settings.review.get("consensus", {})),
        qa_rates=parse_qa(settings.review.get("qa", {})),
    )
    install_handlers(app, templates)
    return app
