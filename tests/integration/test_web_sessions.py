"""Reviewer web sessions end on the server's side: logout, password change and disabling end every copy
of the cookie (the session epoch); a session has an absolute lifetime and an idle timeout; logins are
counted before the password is checked and never hash inside a database transaction."""

from __future__ import annotations

import asyncio
import importlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from itsdangerous import URLSafeTimedSerializer
from itsdangerous.timed import TimestampSigner
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from gateway.audit import events
from gateway.review.reviewers import create_reviewer
from gateway.storage.models import AuditEvent, Reviewer
from gateway.web.security import SESSION_COOKIE, SessionMiddleware
from tests.browser.support import PASSWORD, SECRET, WebHarness, csrf_of, page_csrf


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebHarness]:
    harness = WebHarness(tmp_path_factory.mktemp("web-sessions"))
    yield harness
    harness.close()


_names = iter(range(1, 1000))


def new_reviewer(web: WebHarness) -> str:
    name = f"sess{next(_names)}"
    with web.sessions() as s, s.begin():
        create_reviewer(session=s, username=name, password=PASSWORD)
    return name


def copy_of(web: WebHarness, client: TestClient) -> TestClient:
    """Another browser holding a copy of ``client``'s session cookie (as a thief would)."""
    thief = web.client()
    thief.cookies.set(SESSION_COOKIE, client.cookies[SESSION_COOKIE])
    return thief


def assert_logged_out(client: TestClient) -> None:
    page = client.get("/queue")
    assert page.status_code == 303 and page.headers["location"].startswith("/login"), page.status_code
    api = client.post("/api/items/x/lease", headers={"x-csrf-token": "whatever"})
    assert api.status_code in (401, 403)


def test_logout_ends_a_copied_cookie_too(web: WebHarness) -> None:
    name = new_reviewer(web)
    browser = web.client(name)
    thief = copy_of(web, browser)
    assert thief.get("/queue").status_code == 200, "the copy works while the session lives"
    token = page_csrf(browser)
    assert browser.post("/logout", data={"csrf_token": token}).status_code == 303
    assert_logged_out(browser)
    assert_logged_out(thief)
    lease = thief.post("/api/items/x/lease", headers={"x-csrf-token": csrf_of(thief.get("/login").text)})
    assert lease.status_code == 401 and lease.json()["error"] == "LoginRequired"
    with web.sessions() as s:
        kinds = s.scalars(select(AuditEvent.event_type).where(AuditEvent.actor == f"reviewer:{name}")).all()
    assert events.REVIEWER_LOGOUT in kinds


def test_logout_ends_every_browser_and_a_new_login_works(web: WebHarness) -> None:
    name = new_reviewer(web)
    laptop, phone = web.client(name), web.client(name)
    laptop.post("/logout", data={"csrf_token": page_csrf(laptop)})
    assert_logged_out(phone)
    again = web.client(name)
    assert again.get("/queue").status_code == 200


def test_replaying_an_old_cookie_does_not_log_out_the_new_session(web: WebHarness) -> None:
    name = new_reviewer(web)
    first = web.client(name)
    old = copy_of(web, first)
    old_token = page_csrf(first)
    first.post("/logout", data={"csrf_token": old_token})
    fresh = web.client(name)
    old.post("/logout", data={"csrf_token": old_token})  # the ended session's logout is a no-op
    assert fresh.get("/queue").status_code == 200


def test_password_change_and_disabling_end_the_sessions(web: WebHarness) -> None:
    from gateway.review.reviewers import disable_reviewer, set_password

    name = new_reviewer(web)
    browser = web.client(name)
    thief = copy_of(web, browser)
    with web.sessions() as s, s.begin():
        set_password(session=s, username=name, password="another good password")
    assert_logged_out(thief)
    assert_logged_out(browser)
    token = csrf_of(browser.get("/login").text)
    form = {"username": name, "password": "another good password", "csrf_token": token}
    assert browser.post("/login", data=form).status_code == 303
    thief = copy_of(web, browser)
    assert thief.get("/queue").status_code == 200
    with web.sessions() as s, s.begin():
        disable_reviewer(session=s, username=name)
    assert_logged_out(thief)


def _signed(payload: dict[str, Any]) -> str:
    return URLSafeTimedSerializer(SECRET, salt="modgate.web.session").dumps(payload)


def test_the_session_has_an_absolute_lifetime(web: WebHarness) -> None:
    """A cookie kept fresh by activity still ends 12 h after its login."""
    with web.sessions() as s:
        rita = s.scalars(select(Reviewer).where(Reviewer.username == "rita")).one()
        epoch = rita.session_epoch
    client = web.client()
    fresh = {"rid": rita.id, "ep": epoch, "csrf": "t" * 43, "at": int(time.time()) - 3600}
    client.cookies.set(SESSION_COOKIE, _signed(fresh))
    assert client.get("/queue").status_code == 200, "an hour after login, active: still in"
    stale = {**fresh, "at": int(time.time()) - 12 * 3600 - 5}
    client.cookies.set(SESSION_COOKIE, _signed(stale))  # signed just now: the activity is recent
    assert_logged_out(client)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_900_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clocked(monkeypatch: pytest.MonkeyPatch) -> tuple[TestClient, FakeClock]:
    """A bare app behind SessionMiddleware whose clock (and the cookie signer's) the test moves."""
    clock = FakeClock()
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: int(clock()))

    async def login(request: Request) -> Response:
        request.scope["session"].start("r1", 0, now=clock())
        return PlainTextResponse("in")

    async def me(request: Request) -> Response:
        return PlainTextResponse(str(request.scope["session"].get("rid", "-")))

    app = Starlette(routes=[Route("/login", login), Route("/me", me)])
    wrapped = SessionMiddleware(app, secret=SECRET, lifetime_s=12 * 3600, idle_s=2 * 3600, clock=clock)
    return TestClient(wrapped), clock  # type: ignore[arg-type]


def test_activity_does_not_extend_the_lifetime(clocked: tuple[TestClient, FakeClock]) -> None:
    client, clock = clocked
    client.get("/login")
    for _ in range(11):
        clock.now += 3600
        assert client.get("/me").text == "r1"
    clock.now += 3600 + 1
    assert client.get("/me").text == "-"


def test_an_idle_session_ends(clocked: tuple[TestClient, FakeClock]) -> None:
    client, clock = clocked
    client.get("/login")
    clock.now += 2 * 3600 - 10
    assert client.get("/me").text == "r1", "activity re-signs the cookie"
    clock.now += 2 * 3600 - 10
    assert client.get("/me").text == "r1"
    clock.now += 2 * 3600 + 1
    assert client.get("/me").text == "-"


def test_a_concurrent_burst_of_bad_logins_is_throttled(web: WebHarness) -> None:
    """Attempts are counted before the slow check: of 10 at once, 5 are checked and 5 refused."""

    async def burst() -> list[int]:
        transport = httpx.ASGITransport(app=web.app, client=("10.1.2.3", 4000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            token = csrf_of((await client.get("/login")).text)
            form = {"username": "rita", "password": "wrong password!", "csrf_token": token}
            replies = await asyncio.gather(*(client.post("/login", data=form) for _ in range(10)))
            return sorted(r.status_code for r in replies)

    assert asyncio.run(burst()) == [401] * 5 + [429] * 5
    assert web.client("rita").get("/queue").status_code == 200, "other addresses are not affected"


def _patch_password_check(monkeypatch: pytest.MonkeyPatch, spy: Callable[[str, str], bool]) -> None:
    """Puts ``spy`` wherever the login path looks up ``verify_password``."""
    for module_name in ("gateway.review.reviewers", "gateway.review.logins"):
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        if hasattr(module, "verify_password"):
            monkeypatch.setattr(module, "verify_password", spy)


def test_the_password_check_holds_no_database_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """While a login's password is being checked, another process can write to the SQLite database."""
    harness = WebHarness(tmp_path)
    try:
        from gateway.review import passwords

        writes: list[str] = []

        def spy(password: str, encoded: str) -> bool:
            other = sqlite3.connect(str(tmp_path / "web.db"), timeout=0.2, isolation_level=None)
            try:
                other.execute("BEGIN IMMEDIATE")
                other.execute("ROLLBACK")
                writes.append("ok")
            except sqlite3.OperationalError as exc:
                writes.append(str(exc))
            finally:
                other.close()
            return passwords.verify_password(password, encoded)

        _patch_password_check(monkeypatch, spy)
        for username, password, status in (
            ("rita", PASSWORD, 303),
            ("rita", "a wrong password", 401),
            ("nobody", PASSWORD, 401),
        ):
            client = harness.client()
            token = csrf_of(client.get("/login").text)
            form = {"username": username, "password": password, "csrf_token": token}
            assert client.post("/login", data=form).status_code == status
        assert writes == ["ok", "ok", "ok"]
    finally:
        harness.close()


def test_a_burst_of_logins_checks_two_passwords_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rest of the worker threads stay free for the other pages' database work."""
    harness = WebHarness(tmp_path)
    try:
        from gateway.review import passwords

        running, most = 0, 0
        guard = threading.Lock()

        def spy(password: str, encoded: str) -> bool:
            nonlocal running, most
            with guard:
                running += 1
                most = max(most, running)
            time.sleep(0.05)
            with guard:
                running -= 1
            return passwords.verify_password(password, encoded)

        _patch_password_check(monkeypatch, spy)

        async def burst() -> list[int]:
            transport = httpx.ASGITransport(app=harness.app, client=("10.4.5.6", 4000))
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
                token = csrf_of((await client.get("/login")).text)
                forms = [
                    {"username": f"user{n}", "password": "wrong password!", "csrf_token": token}
                    for n in range(8)
                ]
                replies = await asyncio.gather(*(client.post("/login", data=f) for f in forms))
                return [r.status_code for r in replies]

        assert asyncio.run(burst()) == [401] * 8
        assert most == 2
    finally:
        harness.close()
