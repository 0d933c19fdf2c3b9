"""The web app's protections, as two ASGI middlewares and the CSRF check.

* :class:`SessionMiddleware`: the session lives in a signed cookie (itsdangerous, timestamped).
  Signed, not encrypted: it holds only the reviewer id, the session epoch, the CSRF token and the login
  time, nothing secret. A session ends after ``idle_s`` without a request (the signature's timestamp,
  refreshed at most once a minute) and ``lifetime_s`` after login whatever the activity (the login time
  in the cookie); the server-side end (logout elsewhere, password change, disabling) is the epoch, which
  :class:`gateway.web.base.BaseView` compares with the database on every request. Starlette's own
  middleware is not used because it fixes the ``Secure`` flag at start-up; here it follows the request
  (``Secure`` whenever the request came over TLS, directly or via a proxy that says so), so one
  configuration serves both a TLS deployment and plain loopback tests.
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
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.datastructures import MutableHeaders
from starlette.requests import HTTPConnection, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.errors import Forbidden, ResourceExhausted

SESSION_COOKIE = "modgate_session"
SESSION_LIFETIME_S = 12 * 3600  # a reviewer logs in at most twice a working day
SESSION_IDLE_S = 2 * 3600
SESSION_REFRESH_S = 60  # how stale the cookie's timestamp may get before a response re-signs it
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

    def start(self, reviewer_id: str, epoch: int, *, now: float | None = None) -> None:
        """A fresh session for a reviewer who just logged in: new CSRF token, nothing kept from before."""
        self.clear()
        self["rid"] = reviewer_id
        self["ep"] = epoch
        self["csrf"] = secrets.token_urlsafe(32)
        self["at"] = int(time.time() if now is None else now)

    def flash(self, message: str, kind: str = "info") -> None:
        """A one-line notice shown on the next page rendered (after a redirect)."""
        self["flash"] = [*self.get("flash", [])[-3:], [kind, message[:300]]]

    def take_flashes(self) -> list[tuple[str, str]]:
        return [(str(k), str(m)) for k, m in self.pop("flash", [])]


def is_tls(conn: HTTPConnection) -> bool:
    """Whether the browser reached us over TLS (uvicorn applies X-Forwarded-Proto from trusted proxies)."""
    return conn.url.scheme in ("https", "wss")


class SessionMiddleware:
    """Loads the signed session cookie into ``scope["session"]`` and writes it back when changed.

    A cookie past its idle timeout or its absolute lifetime loads as an empty session (logged out).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        secret: str,
        lifetime_s: float = SESSION_LIFETIME_S,
        idle_s: float = SESSION_IDLE_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.app = app
        self.lifetime_s = lifetime_s
        self.idle_s = min(idle_s, lifetime_s)
        self.clock = clock
        self.serializer = URLSafeTimedSerializer(secret, salt="modgate.web.session")

    def _load(self, conn: HTTPConnection) -> WebSession:
        raw = conn.cookies.get(SESSION_COOKIE)
        if not raw:
            return WebSession()
        now = self.clock()
        try:
            data, signed_at = self.serializer.loads(raw, return_timestamp=True)
        except (BadSignature, ValueError, json.JSONDecodeError):
            return WebSession()  # tampered with, or signed by another secret: start over
        age = now - signed_at.timestamp()
        if not isinstance(data, dict) or age > self.idle_s:
            return WebSession()  # idle too long
        session = WebSession(data)
        if "rid" in session:
            login_at = session.get("at")
            if not isinstance(login_at, int) or not -60 <= now - login_at <= self.lifetime_s:
                return WebSession()  # past the absolute lifetime (or a login time from the future)
            if age > SESSION_REFRESH_S:
                session.modified = True  # re-sign: the timestamp tracks activity for the idle timeout
        return session

    def _cookie(self, session: WebSession, secure: bool) -> str:
        flags = "Path=/; HttpOnly; SameSite=Lax" + ("; Secure" if secure else "")
        if not session:
            return f"{SESSION_COOKIE}=; {flags}; Max-Age=0"
        return f"{SESSION_COOKIE}={self.serializer.dumps(dict(session))}; {flags}; Max-Age={int(self.idle_s)}"

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
MAX_TRACKED = 10_000
GLOBAL_MAX_ATTEMPTS = 120
GLOBAL_WINDOW_S = 60.0


class LoginThrottle:
    """Bounds password checks: per (address, username) and for the whole process.

    * At most ``max_failures`` attempts per (address, username) per ``window_s`` that did not end in a
      successful login. The attempt is counted *before* the password is checked, so a concurrent burst
      cannot slip through while the slow checks run; a success forgets the key's count.
    * At most ``global_max`` checked attempts per ``global_window_s`` over all keys: a spray of
      usernames from many addresses cannot make the gateway spend more than that on Argon2
      (~50 ms each), whatever it costs legitimate reviewers trying to log in meanwhile.
    * At most ``max_tracked`` keys are remembered; past that the least recently tried key is forgotten
      (never all of them at once).

    In memory, per process: each replica counts on its own.
    """

    def __init__(
        self,
        *,
        max_failures: int = MAX_FAILURES,
        window_s: float = WINDOW_S,
        max_tracked: int = MAX_TRACKED,
        global_max: int = GLOBAL_MAX_ATTEMPTS,
        global_window_s: float = GLOBAL_WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self.max_tracked = max_tracked
        self.global_max = global_max
        self.global_window_s = global_window_s
        self.clock = clock
        self._attempts: OrderedDict[tuple[str, str], deque[float]] = OrderedDict()
        self._all: deque[float] = deque()

    @staticmethod
    def _prune(times: deque[float], older_than: float) -> deque[float]:
        while times and times[0] <= older_than:
            times.popleft()
        return times

    def attempt(self, key: tuple[str, str]) -> None:
        """Count one login attempt for ``key``; ResourceExhausted (nothing counted) when over a limit.

        Call it before checking the password. Synchronous on purpose: on the event loop, the check and
        the count cannot interleave with another request's.
        """
        now = self.clock()
        everyone = self._prune(self._all, now - self.global_window_s)
        if len(everyone) >= self.global_max:
            wait = int(everyone[0] + self.global_window_s - now) + 1
            raise ResourceExhausted(f"too many logins on this server right now; try again in {wait} s")
        times = self._prune(self._attempts.get(key, deque()), now - self.window_s)
        if len(times) >= self.max_failures:
            self._attempts.move_to_end(key)  # a key under attack stays remembered
            wait = int(times[0] + self.window_s - now) + 1
            raise ResourceExhausted(f"too many failed logins; try again in {wait} s")
        times.append(now)
        everyone.append(now)
        self._attempts[key] = times
        self._attempts.move_to_end(key)
        while len(self._attempts) > self.max_tracked:
            self._attempts.popitem(last=False)  # the least recently tried key

    def succeeded(self, key: tuple[str, str]) -> None:
        self._attempts.pop(key, None)

    def __len__(self) -> int:
        return len(self._attempts)

    def __contains__(self, key: object) -> bool:
        return key in self._attempts
