"""The base view every page family builds on: login, roles, CSRF and database access in one place.

A view subclasses :class:`BaseView` and says what it needs (``login_required``, ``admin_only``); the
checks run in :meth:`BaseView.dispatch` before any handler, so no page can forget them. Handlers reach
the database only through :meth:`BaseView.db`, which runs the work in its own transaction off the event
loop (``gateway.storage.tx``) and loads the logged-in reviewer inside that same transaction: a reviewer
disabled a second ago, or who logged out or changed password elsewhere (the session epoch,
``Reviewer.session_epoch``), is refused at their next click, even though the cookie's signature is valid.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy.orm import Session, sessionmaker
from starlette.endpoints import HTTPEndpoint
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.templating import Jinja2Templates

from gateway.errors import Forbidden, GatewayError, InvalidArgument, NotFound
from gateway.fields import is_record_id
from gateway.review.consensus import Consensus
from gateway.review.deadlines import Deadline
from gateway.review.passwords import OWASP, HashParams
from gateway.storage.models import Reviewer
from gateway.storage.tx import in_transaction
from gateway.web.errors import LoginRequired, error_response
from gateway.web.security import LoginThrottle, WebSession, check_csrf

if TYPE_CHECKING:
    from gateway.audit.keeper import AnchorKeeper

log = logging.getLogger(__name__)
T = TypeVar("T")
# ``async (ticket) -> gateway.pipeline.replay.ReplayReport``; typed loosely so that importing the web app
# does not import the generation stack (torch) behind ``gateway.pipeline.replay``.
ReplayFn = Callable[..., Awaitable[Any]]  # (ticket, *, actor) -> gateway.pipeline.replay.ReplayReport


@dataclass(frozen=True)
class Principal:
    """The logged-in reviewer as the templates see it (no ORM object outlives its transaction)."""

    id: str
    username: str
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True)
class WebContext:
    """What every view needs from the app: built once by ``create_app`` and kept in ``app.state``."""

    sessions: sessionmaker[Session]
    templates: Jinja2Templates
    lease_seconds: int
    policies: Mapping[str, Any]
    throttle: LoginThrottle
    password_params: HashParams = OWASP  # Argon2id cost for reviewer passwords (settings password_hash_*)
    # Password checks running at once: each holds a worker thread (the one pool every view's database
    # work shares) and 19 MiB for ~50 ms, so a burst of logins must not take all the threads.
    password_checks: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(2))
    replay: ReplayFn | None = None  # the admins' Replay button; None: not offered (no generator here)
    # terms_version -> {term: substitute} of the identity-term lists this process knows
    identity_terms: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    # the server's audit anchors (gateway.audit.keeper.AnchorKeeper); None: anchoring is off
    anchors: AnchorKeeper | None = None
    # policy name -> its review deadline (settings [review.deadlines]): the queue shows the time left
    deadlines: Mapping[str, Deadline] = field(default_factory=dict)
    # policy name -> how many verdicts its items need and how they combine (settings [review.consensus])
    consensus: Mapping[str, Consensus] = field(default_factory=dict)
    # policy name -> QA sample rate (settings [review.qa]): the report shows their miss rates, n = 0 too
    qa_rates: Mapping[str, float] = field(default_factory=dict)


class BaseView(HTTPEndpoint):
    """Checks CSRF (unsafe methods), login and role before calling ``get``/``post``."""

    login_required = True
    admin_only = False

    @property
    def ctx(self) -> WebContext:
        return self.scope["app"].state.web

    async def dispatch(self) -> None:
        request = Request(self.scope, receive=self.receive)
        method = "get" if request.method == "HEAD" else request.method.lower()
        handler = getattr(self, method, None)
        if handler is None:
            raise HTTPException(405)
        await check_csrf(request)
        if self.login_required and not request.scope["session"].get("rid"):
            raise LoginRequired("please log in")
        try:
            response: Response = await handler(request)
        except (GatewayError, HTTPException):
            raise
        except Exception as exc:  # answered here, inside the middlewares, so the CSP headers still apply
            log.error("unexpected error in %s %s", request.method, request.url.path, exc_info=exc)
            response = error_response(
                request,
                self.ctx.templates,
                500,
                "Something went wrong on our side; it has been logged.",
                kind="InternalError",
                hint=None,
            )
        await response(self.scope, self.receive, self.send)

    @staticmethod
    def session(request: Request) -> WebSession:
        return request.scope["session"]

    async def db(self, request: Request, work: Callable[[Session, Reviewer], T]) -> T:
        """``work(session, reviewer)`` in one transaction, after checking the reviewer may be here."""
        reviewer_id = self.session(request).get("rid")
        epoch = self.session(request).get("ep")
        admin_only = self.admin_only

        def run(session: Session) -> T:
            reviewer = session.get(Reviewer, reviewer_id) if isinstance(reviewer_id, str) else None
            # The epoch moves on at logout, password change and disabling: a copied cookie dies with them.
            if reviewer is None or reviewer.disabled or reviewer.session_epoch != epoch:
                raise LoginRequired("your session has ended; please log in again")
            request.scope["modgate.principal"] = principal_of(reviewer)
            if admin_only and not reviewer.is_admin:
                raise Forbidden("this page is for admins")
            return work(session, reviewer)

        return await in_transaction(self.ctx.sessions, run)

    def render(self, request: Request, template: str, context: dict[str, Any], status: int = 200) -> Response:
        """Render ``template`` with the values every page uses (who is logged in, CSRF token, notices)."""
        session = self.session(request)
        full = {
            "me": request.scope.get("modgate.principal"),
            "csrf_token": session.csrf_token(),
            "flashes": session.take_flashes(),
            **context,
        }
        return self.ctx.templates.TemplateResponse(request, template, full, status_code=status)

    def redirect(
        self, request: Request, url: str, *, flash: str | None = None, kind: str = "info"
    ) -> Response:
        if flash:
            self.session(request).flash(flash, kind)
        return RedirectResponse(url, status_code=303)


def record_id_in_path(request: Request, key: str, missing: str) -> str:
    """The row id in the URL's `key` part. A URL that names no id (not one the gateway made) names no
    row: 404 with `missing`, and the value never reaches a query."""
    value = str(request.path_params[key])
    if not is_record_id(value):
        raise NotFound(missing)
    return value


def principal_of(reviewer: Reviewer) -> Principal:
    return Principal(id=reviewer.id, username=reviewer.username, role=reviewer.role.value)


async def form_fields(request: Request, *names: str, max_chars: int = 100_000) -> dict[str, str]:
    """The named text fields of the posted form ('' when absent); a file or an oversized value is a 400."""
    form = await request.form()
    values: dict[str, str] = {}
    for name in names:
        value = form.get(name, "")
        if not isinstance(value, str):
            raise InvalidArgument(name, "must be text")
        if len(value) > max_chars:
            raise InvalidArgument(name, f"must be at most {max_chars} characters")
        values[name] = value
    return values
