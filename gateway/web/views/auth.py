"""Login and logout.

Passwords are checked by :func:`gateway.review.logins.login_reviewer`, off the event loop and outside
any database transaction, which also writes the ``reviewer.login`` / ``reviewer.login_failed`` audit
events. Attempts are counted (``LoginThrottle``) before the password is checked, per client address and
username and for the whole process; the message never says which of username or password was wrong.
Logout ends every session of the reviewer (the session epoch), not only this browser's cookie.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response

from gateway import fields
from gateway.review.logins import login_reviewer
from gateway.review.reviewers import end_sessions
from gateway.storage.tx import in_transaction
from gateway.web.base import BaseView, form_fields


def safe_next(target: str | None) -> str:
    """Only a local path may follow a login (no open redirect to another site)."""
    if not target:
        return "/queue"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/queue"
    if "\\" in target or target.startswith("/login"):
        return "/queue"
    return target


class LoginView(BaseView):
    login_required = False

    async def get(self, request: Request) -> Response:
        if self.session(request).get("rid"):
            return self.redirect(request, safe_next(request.query_params.get("next")))
        return self.render(
            request, "login.html", {"next": safe_next(request.query_params.get("next")), "error": None}
        )

    async def post(self, request: Request) -> Response:
        form = await form_fields(request, "username", "password", "next", max_chars=1024)
        # No account's name holds a control character, and PostgreSQL refuses NUL in the lookup: 400.
        username = fields.text("username", form["username"].strip(), max_chars=1024)
        key = (request.client.host if request.client else "?", username.casefold())
        target = safe_next(form["next"])
        if not username or not form["password"]:
            return self._failed(request, target, username, "Enter your username and password.")
        self.ctx.throttle.attempt(key)
        async with self.ctx.password_checks:
            logged_in = await asyncio.to_thread(
                login_reviewer,
                self.ctx.sessions,
                username=username,
                password=form["password"],
                params=self.ctx.password_params,
            )
        if logged_in is None:
            return self._failed(request, target, username, "Wrong username or password.")
        self.ctx.throttle.succeeded(key)
        self.session(request).start(logged_in.reviewer_id, logged_in.session_epoch)
        return self.redirect(request, target)

    def _failed(self, request: Request, target: str, username: str, error: str) -> Response:
        context = {"next": target, "error": error, "username": username}
        return self.render(request, "login.html", context, status=401)


class LogoutView(BaseView):
    login_required = False

    async def post(self, request: Request) -> Response:
        session = self.session(request)
        reviewer_id, epoch = session.get("rid"), session.get("ep")
        if isinstance(reviewer_id, str) and isinstance(epoch, int):

            def work(db: Session) -> bool:
                return end_sessions(session=db, reviewer_id=reviewer_id, epoch=epoch)

            await in_transaction(self.ctx.sessions, work)
        session.clear()
        return self.redirect(request, "/login", flash="You are logged out.")
