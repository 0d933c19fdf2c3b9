"""Reviewer web: login and sessions, CSRF, roles and the security headers (Starlette TestClient)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import select

from gateway.audit import events
from gateway.config import Settings, SettingsError
from gateway.review.reviewers import disable_reviewer
from gateway.storage.models import AuditEvent
from gateway.web.security import CONTENT_SECURITY_POLICY, SESSION_COOKIE
from tests.browser.support import PASSWORD, WebHarness, csrf_of, page_csrf


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebHarness]:
    harness = WebHarness(tmp_path_factory.mktemp("web-auth"))
    yield harness
    harness.close()


def audit_types(web: WebHarness, actor: str) -> list[str]:
    with web.sessions() as s:
        return list(s.scalars(select(AuditEvent.event_type).where(AuditEvent.actor == actor)))


def test_login_page_has_a_csrf_token_and_strict_headers(web: WebHarness) -> None:
    reply = web.client().get("/login")
    assert reply.status_code == 200
    assert csrf_of(reply.text)
    headers = reply.headers
    assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    for directive in ("default-src 'self'", "frame-ancestors 'none'", "script-src 'self'"):
        assert directive in CONTENT_SECURITY_POLICY
    assert "unsafe-inline" not in CONTENT_SECURITY_POLICY
    assert headers["x-frame-options"] == "DENY" and headers["x-content-type-options"] == "nosniff"
    assert headers["cache-control"] == "no-store"


def test_login_sets_an_httponly_samesite_cookie_and_audits(web: WebHarness) -> None:
    client = web.client()
    token = csrf_of(client.get("/login").text)
    reply = client.post("/login", data={"username": "rita", "password": PASSWORD, "csrf_token": token})
    assert reply.status_code == 303 and reply.headers["location"] == "/queue"
    cookie = reply.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=") and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie, "plain HTTP on loopback: a Secure cookie would never come back"
    assert client.get("/queue").status_code == 200
    assert events.REVIEWER_LOGIN in audit_types(web, "reviewer:rita")


def test_cookie_is_secure_over_tls(web: WebHarness) -> None:
    client = web.client(base_url="https://testserver")
    token = csrf_of(client.get("/login").text)
    reply = client.post("/login", data={"username": "rita", "password": PASSWORD, "csrf_token": token})
    assert reply.status_code == 303 and "Secure" in reply.headers["set-cookie"]
    assert "strict-transport-security" in reply.headers


def test_wrong_password_is_refused_generically_and_audited(web: WebHarness) -> None:
    client = web.client()
    token = csrf_of(client.get("/login").text)
    for username in ("ravi", "nobody-here"):
        form = {"username": username, "password": "wrong-pass", "csrf_token": token}
        reply = client.post("/login", data=form)
        assert reply.status_code == 401
        assert "Wrong username or password." in reply.text
    assert events.REVIEWER_LOGIN_FAILED in audit_types(web, "reviewer:ravi")
    assert events.REVIEWER_LOGIN_FAILED in audit_types(web, "reviewer:nobody-here")
    assert client.get("/queue").status_code == 303, "still logged out"


def test_failed_logins_are_throttled(web: WebHarness) -> None:
    client = web.client()
    token = csrf_of(client.get("/login").text)
    form = {"username": "throttled", "password": "wrong-pass", "csrf_token": token}
    codes = [client.post("/login", data=form).status_code for _ in range(6)]
    assert codes == [401] * 5 + [429]
    assert "too many failed logins" in client.post("/login", data=form).text


def test_pages_redirect_to_login_and_back(web: WebHarness) -> None:
    client = web.client()
    reply = client.get("/queue?sort=age")
    assert reply.status_code == 303 and reply.headers["location"] == "/login?next=/queue%3Fsort%3Dage"
    login = client.get(reply.headers["location"])
    assert 'name="next" value="/queue?sort=age"' in login.text
    api = client.post("/api/items/x/lease", headers={"x-csrf-token": csrf_of(login.text)})
    assert api.status_code == 401 and api.json()["error"] == "LoginRequired"


@pytest.mark.parametrize("target", ["//evil.example/", "https://evil.example/", "/\\evil", "javascript:x"])
def test_login_never_redirects_off_site(web: WebHarness, target: str) -> None:
    client = web.client()
    token = csrf_of(client.get("/login").text)
    form = {"username": "rita", "password": PASSWORD, "csrf_token": token, "next": target}
    reply = client.post("/login", data=form)
    assert reply.status_code == 303 and reply.headers["location"] == "/queue"


def test_logout_ends_the_session(web: WebHarness) -> None:
    client = web.client("rita")
    reply = client.post("/logout", data={"csrf_token": page_csrf(client)})
    assert reply.status_code == 303 and reply.headers["location"] == "/login"
    assert client.get("/queue").status_code == 303


def test_forms_without_the_csrf_token_are_refused(web: WebHarness) -> None:
    client = web.client("rita")
    token = page_csrf(client)
    for form in ({}, {"csrf_token": "forged"}, {"csrf_token": ""}):
        reply = client.post("/queue/claim", data=form)
        assert reply.status_code == 403, form
        assert "reload the page" in reply.text and "Traceback" not in reply.text
    assert client.post("/logout", data={}).status_code == 403
    assert client.post("/api/items/x/lease").status_code == 403, "fetch without the header"
    cross = client.post("/queue/claim", data={"csrf_token": token}, headers={"origin": "http://evil.example"})
    assert cross.status_code == 403
    assert client.post("/queue/claim", data={"csrf_token": token}).status_code == 303


def test_login_itself_needs_the_csrf_token(web: WebHarness) -> None:
    reply = web.client().post("/login", data={"username": "rita", "password": PASSWORD})
    assert reply.status_code == 403


def test_audit_is_for_admins_only(web: WebHarness) -> None:
    reviewer, admin = web.client("rita"), web.client("ada")
    for path in ("/audit", "/audit.csv", "/api/audit/verify"):
        assert reviewer.get(path).status_code == 403, path
        assert admin.get(path).status_code == 200, path
    assert 'href="/audit"' in admin.get("/queue").text
    assert 'href="/audit"' not in reviewer.get("/queue").text


def test_a_disabled_reviewer_loses_the_session_at_once(web: WebHarness) -> None:
    with web.sessions() as s, s.begin():
        from gateway.review.reviewers import create_reviewer

        create_reviewer(session=s, username="leaver", password=PASSWORD)
    client = web.client("leaver")
    assert client.get("/queue").status_code == 200
    with web.sessions() as s, s.begin():
        disable_reviewer(session=s, username="leaver")
    reply = client.get("/queue")
    assert reply.status_code == 303 and reply.headers["location"].startswith("/login")


def test_a_forged_or_tampered_cookie_is_ignored(web: WebHarness) -> None:
    client = web.client("rita")
    value = client.cookies[SESSION_COOKIE]
    payload = json.loads(base64.urlsafe_b64decode(value.split(".")[0] + "=="))
    forged = URLSafeTimedSerializer("not-the-secret", salt="modgate.web.session").dumps(payload)
    tampered = value[:-2] + ("AA" if not value.endswith("AA") else "BB")
    for cookie in (forged, tampered):
        client.cookies.clear()
        client.cookies.set(SESSION_COOKIE, cookie)
        assert client.get("/queue").status_code == 303


def test_settings_validate_the_web_fields() -> None:
    assert Settings().web_enabled and Settings().web_address == "127.0.0.1:8080"
    assert "session_secret" not in repr(Settings(session_secret="s" * 40)), "never in logs"
    with pytest.raises(SettingsError, match="session_secret must be at least 32"):
        Settings(session_secret="short")
    with pytest.raises(SettingsError, match="web_address must look like HOST:PORT"):
        Settings(web_address="8080")


def test_unknown_paths_and_methods_get_the_error_page(web: WebHarness, tmp_path: Path) -> None:
    client = web.client("rita")
    missing = client.get("/no/such/page")
    assert missing.status_code == 404 and "Not found" in missing.text
    assert missing.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert client.get("/queue/claim").status_code == 405
