"""Login and logout.

Passwords are checked by :func:`gateway.review.reviewers.authenticate_reviewer`, which also writes the
``reviewer.login`` / ``reviewer.login_failed`` audit events (committed either way: the transaction is
the view's, and a failed login returns normally). Failures are throttled per client address and
username in memory, on top of scrypt's cost, and the message never says which of the two was wrong.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response

from gateway.review.reviewers import authenticate_reviewer
from gateway.storage.tx import in_transaction
from gateway.web.base import BaseView, Principal, form_fields, principal_of


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
        fields = await form_fields(request, "username", "password", "next", max_chars=1024)
        username = fields["username"].strip()
        key = (request.client.host if request.client else "?", username.casefold())
        self.ctx.throttle.check(key)
        target = safe_next(fields["next"])
        if not username or not fields["password"]:
            return self._failed(request, target, username, "Enter your username and password.")

        def work(session: Session) -> Principal | None:
            reviewer = authenticate_reviewer(session=session, username=username, password=fields["password"])
            return principal_of(reviewer) if reviewer is not None else None

        principal = await in_transaction(self.ctx.sessions, work)
        if principal is None:
            self.ctx.throttle.failed(key)
            return self._failed(request, target, username, "Wrong username or password.")
        self.ctx.throttle.succeeded(key)
        self.session(request).start(principal.id)
        return self.redirect(request, target)

    def _failed(self, request: Request, target: str, username: str, error: str) -> Response:
        context = {"next": target, "error": error, "username": username}
        return self.render(request, "login.html", context, status=401)


class LogoutView(BaseView):
    login_required = False

    async def post(self, request: Request) -> Response:
        self.session(request).clear()
        return self.redirect(request, "/login", flash="You are logged out.")
