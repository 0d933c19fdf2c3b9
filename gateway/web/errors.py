"""The one place where errors become HTTP responses.

Every domain error carries its ``http_status`` (``gateway/errors.py``); :func:`domain_error` turns it
into an HTML page or, for fetch requests, a JSON body, with a message written for the reviewer. The
review-queue conflicts get a sentence that says what happened and what to do, since "409" alone means
nothing to a person whose approval did not go through. Anything unexpected is logged here and shown as
a bare 500: never a traceback, never generated text.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.templating import Jinja2Templates

from gateway.errors import GatewayError
from gateway.review.errors import AlreadyDecided, LeaseExpired, NotClaimant, StaleVersion

log = logging.getLogger(__name__)


class LoginRequired(GatewayError):
    """No valid session, or the reviewer behind it was disabled or deleted."""

    grpc_status = "UNAUTHENTICATED"
    http_status = 401


# What a reviewer should read when a decision is refused because the item moved on without them.
_CONFLICT_HINTS: dict[type[GatewayError], str] = {
    StaleVersion: "This item changed after you opened it (another reviewer acted on it). "
    "Nothing was changed by you; reload the item to see its current state.",
    AlreadyDecided: "Someone already decided this item; decisions are final, so yours was not applied.",
    NotClaimant: "You do not hold the claim on this item (someone else claimed it, or you never did), "
    "so your decision was not applied. Use Review next to claim an item.",
    LeaseExpired: "Your claim on this item expired before your decision arrived, so it was not applied. "
    "The item is back in the queue.",
}
_TITLES = {
    400: "Bad request",
    401: "Please log in",
    403: "Not allowed",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Too large",
    429: "Too many attempts",
    499: "Cancelled",
    503: "Unavailable",
}


def wants_json(request: Request) -> bool:
    """Fetch endpoints live under ``/api/``; elsewhere only an explicit JSON Accept header counts."""
    accept = request.headers.get("accept", "")
    return request.url.path.startswith("/api/") or (
        "application/json" in accept and "text/html" not in accept
    )


def _hint(exc: Exception) -> str | None:
    for cls, hint in _CONFLICT_HINTS.items():
        if isinstance(exc, cls):
            return hint
    return None


def error_response(
    request: Request, templates: Jinja2Templates, status: int, message: str, *, kind: str, hint: str | None
) -> Response:
    """The response for any refusal: JSON for fetch requests, the error page otherwise."""
    if wants_json(request):
        body: dict[str, Any] = {"error": kind, "status": status, "message": message}
        if hint:
            body["hint"] = hint
        return JSONResponse(body, status_code=status)
    session = request.scope.get("session")
    context: dict[str, Any] = {
        "status": status,
        "title": _TITLES.get(status, "Error"),
        "message": message,
        "hint": hint,
        "me": request.scope.get("modgate.principal"),
        "csrf_token": session.csrf_token() if session is not None else "",
        "flashes": [],
    }
    return templates.TemplateResponse(request, "error.html", context, status_code=status)


def install_handlers(app: Any, templates: Jinja2Templates) -> None:
    """Register the handlers on a Starlette app (one per family: domain, HTTP, unexpected)."""

    async def domain_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, GatewayError)
        status = int(exc.http_status)
        if isinstance(exc, LoginRequired):
            request.scope["session"].pop("rid", None)
            if request.method == "GET" and not wants_json(request):
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse(f"/login?next={_quote(target)}", status_code=303)
        if status >= 500:
            log.warning("web request failed: %s: %s", exc.__class__.__name__, exc)
        return error_response(
            request, templates, status, str(exc), kind=exc.__class__.__name__, hint=_hint(exc)
        )

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        message = exc.detail if isinstance(exc.detail, str) else _TITLES.get(exc.status_code, "Error")
        response = error_response(request, templates, exc.status_code, message, kind="HTTPError", hint=None)
        for name, value in (exc.headers or {}).items():
            response.headers[name] = value
        return response

    async def unexpected(request: Request, exc: Exception) -> Response:
        log.error("unexpected error in %s %s", request.method, request.url.path, exc_info=exc)
        return error_response(
            request,
            templates,
            500,
            "Something went wrong on our side; it has been logged. Nothing you sent was changed "
            "unless the page says so.",
            kind="InternalError",
            hint=None,
        )

    app.add_exception_handler(GatewayError, domain_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)


def _quote(path: str) -> str:
    from urllib.parse import quote

    return quote(path, safe="/")
