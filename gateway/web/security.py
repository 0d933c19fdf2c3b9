"""The web app's protections, as two ASGI middlewares and the CSRF check.

* :class:`SessionMiddleware`: the session lives in a signed cookie (itsdangerous, timestamped, with an
  absolute lifetime). Signed, not encrypted: it holds only the reviewer id, the CSRF token and the login
  time, nothing secret. Starlette's own middleware is not used because it fixes the ``Secure`` flag at
  start-up; here it follows the request (``Secure`` whenever the request came over TLS, directly or via
  a proxy that says so), so one configuration serves both a TLS deployment and plain loopback tests.
* :class:`SecurityHeadersMiddleware`: a strict Content-Security-Policy on every response (no inline
  script or style, nothing from another origin, no framing) and the headers that go with it.
* :func:`check_csrf`: a synchronizer token per session, sent back in a form field or the
  ``X-CSRF-Token`` header, compared in constant time; a cross-origin ``Origin`` header is refused too.
"""

from __future__ import annotations

import hmac
import json
import secrets
import time
from collections import deque
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.datastructures import MutableHeaders
from starlette.requests import HTTPConnection, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.errors import Forbidden, ResourceExhausted

SESSION_COOKIE = "modgate_session"
SESSION_MAX_AGE_S = 12 * 3600  # a reviewer logs in at most twice a working day
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
SECURITY_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cross-origin-opener-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=()",
}


class CsrfRefused(Forbidden):
    """A state-changing request without the session's CSRF token (or from another origin)."""


class WebSession(dict[str, Any]):
    """The session's data; remembers whether a view changed it, so unchanged cookies are not re-sent."""

    modified = False

    def __setitem__(self, key: str, value: Any) -> None:
        self.modified = True
        super().__setitem__(key, value)

    def __delitem__(self, key: str) -> None:
        self.modified = True
        super().__delitem__(key)

    def pop(self, key: str, *default: Any) -> Any:
        if key in self:
            self.modified = True
        return super().pop(key, *default)

    def clear(self) -> None:
        self.modified = True
        super().clear()

    def csrf_token(self) -> str:
        """This session's CSRF token, created on first use (an anonymous session gets one for login)."""
        token = self.get("csrf")
        if not isinstance(token, str) or not token:
            token = secrets.token_urlsafe(32)
            self["csrf"] = token
        return token

    def start(self, reviewer_id: str) -> None:
        """A fresh session for a reviewer who just logged in: new CSRF token, nothing kept from before."""
        self.clear()
        self["rid"] = reviewer_id
        self["csrf"] = secrets.token_urlsafe(32)
        self["at"] = int(time.time())

    def flash(self, message: str, kind: str = "info") -> None:
        """A one-line notice shown on the next page rendered (after a redirect)."""
        self["flash"] = [*self.get("flash", [])[-3:], [kind, message[:300]]]

    def take_flashes(self) -> list[tuple[str, str]]:
        return [(str(k), str(m)) for k, m in self.pop("flash", [])]


def is_tls(conn: HTTPConnection) -> bool:
    """Whether the browser reached us over TLS (uvicorn applies X-Forwarded-Proto from trusted proxies)."""
    return conn.url.scheme in ("https", "wss")


class SessionMiddleware:
    """Loads the signed session cookie into ``scope["session"]`` and writes it back when changed."""

    def __init__(self, app: ASGIApp, *, secret: str, max_age_s: int = SESSION_MAX_AGE_S) -> None:
        self.app = app
        self.max_age_s = max_age_s
        self.serializer = URLSafeTimedSerializer(secret, salt="modgate.web.session")

    def _load(self, conn: HTTPConnection) -> WebSession:
        raw = conn.cookies.get(SESSION_COOKIE)
        if not raw:
            return WebSession()
        try:
            data = self.serializer.loads(raw, max_age=self.max_age_s)
        except (BadSignature, ValueError, json.JSONDecodeError):
            return WebSession()  # expired, tampered with, or signed by another secret: start over
        return WebSession(data) if isinstance(data, dict) else WebSession()

    def _cookie(self, session: WebSession, secure: bool) -> str:
        flags = "Path=/; HttpOnly; SameSite=Lax" + ("; Secure" if secure else "")
        if not session:
            return f"{SESSION_COOKIE}=; {flags}; Max-Age=0"
        return f"{SESSION_COOKIE}={self.serializer.dumps(dict(session))}; {flags}; Max-Age={self.max_age_s}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        conn = HTTPConnection(scope)
        session = self._load(conn)
        had_cookie = SESSION_COOKIE in conn.cookies
        scope["session"] = session

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start" and (session.modified and (session or had_cookie)):
                headers = MutableHeaders(scope=message)
                headers.append("set-cookie", self._cookie(session, is_tls(conn)))
                headers.add_vary_header("Cookie")
            await send(message)

        await self.app(scope, receive, send_with_cookie)


class SecurityHeadersMiddleware:
    """Adds :data:`SECURITY_HEADERS` to every response, and ``no-store`` to everything but static files
    (pages show held text that must not linger in shared caches or the back-forward cache)."""

    def __init__(self, app: ASGIApp, *, static_prefix: str = "/static/") -> None:
        self.app = app
        self.static_prefix = static_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        is_static = str(scope.get("path", "")).startswith(self.static_prefix)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
                if not is_static:
                    headers["cache-control"] = "no-store"
                if is_tls(HTTPConnection(scope)):
                    headers["strict-transport-security"] = "max-age=31536000"
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _same_origin(request: Request) -> bool:
    """False only when the browser says the request comes from another origin."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    host = request.headers.get("host", "")
    return origin.partition("://")[2] == host


async def check_csrf(request: Request) -> None:
    """Refuse a state-changing request whose token is missing or wrong, or that comes from elsewhere.

    The token comes from the ``X-CSRF-Token`` header (fetch) or the ``csrf_token`` form field (forms);
    reading the form here caches it on ``request`` for the view.
    """
    if request.method in SAFE_METHODS:
        return
    expected = request.scope["session"].get("csrf")
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        value = (await request.form()).get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    if not isinstance(expected, str) or not sent or not hmac.compare_digest(sent, expected):
        raise CsrfRefused("the form has expired or did not come from this site: reload the page and retry")
    if not _same_origin(request):
        raise CsrfRefused("cross-origin request refused")


MAX_FAILURES = 5
WINDOW_S = 300.0


class LoginThrottle:
    """At most :data:`MAX_FAILURES` failed logins per (address, username) per :data:`WINDOW_S`."""

    def __init__(self, max_failures: int = MAX_FAILURES, window_s: float = WINDOW_S) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self._failures: dict[tuple[str, str], deque[float]] = {}

    def _recent(self, key: tuple[str, str], now: float) -> deque[float]:
        times = self._failures.setdefault(key, deque())
        while times and times[0] <= now - self.window_s:
            times.popleft()
        return times

    def check(self, key: tuple[str, str]) -> None:
        now = time.monotonic()
        times = self._recent(key, now)
        if len(times) >= self.max_failures:
            wait = int(times[0] + self.window_s - now) + 1
            raise ResourceExhausted(f"too many failed logins; try again in {wait} s")

    def failed(self, key: tuple[str, str]) -> None:
        self._recent(key, time.monotonic()).append(time.monotonic())
        if len(self._failures) > 10_000:  # bounded memory under a spray of usernames
            self._failures.clear()

    def succeeded(self, key: tuple[str, str]) -> None:
        self._failures.pop(key, None)
