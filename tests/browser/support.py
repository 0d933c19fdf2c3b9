"""Helpers shared by the web tests (fast TestClient tests and the browser tests): held items made
through the real data layer, the way the gateway's recorder makes them."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from gateway.config import Settings
from gateway.review.reviewers import create_reviewer
from gateway.storage import migrate
from gateway.storage.engine import make_engine, make_session_factory
from gateway.web import create_app
from tests.support import held

PASSWORD = "correct horse battery staple"
# Script in a prompt or an output must show up as text and never run.
XSS_PROMPT = '<img src=x onerror="document.body.dataset.pwned=1"><script>window.__pwned=1</script>'
XSS_OUTPUT = '</textarea><script>alert("xss")</script><b id="injected">bold?</b>'


def hold_output(
    session: Session,
    *,
    tenant: str = "acme",
    prompt: str = "Tell me about cats",
    text: str = "Cats are wonderful and sometimes awful creatures.",
    scores: dict[str, Any] | None = None,
    reasons: list[dict[str, Any]] | None = None,
    spans: list[dict[str, Any]] | None = None,
    parameters: dict[str, Any] | None = None,
    policy: str = "strict",
    policy_version: str = "test",
    escalated: bool = False,
    priority: float | None = None,
    appeal_reason: str | None = None,
) -> tuple[str, str]:
    """Record one held output, with what a model-scored hold carries, and queue it; returns (item id,
    ticket)."""
    item = held.hold_output(
        session,
        request_id=f"req-{uuid.uuid4().hex[:12]}",
        tenant=tenant,
        model_id="demo-gpt-neo",
        parameters=parameters if parameters is not None else {"temperature": 0.7, "max_new_tokens": 24},
        prompt=prompt,
        text=text,
        policy_name=policy,
        policy_version=policy_version,
        escalated=escalated,
        priority=priority,
        appeal_reason=appeal_reason,
        scores=scores if scores is not None else {"toxicity": 0.62, "insult": 0.31, "profanity_ml": 0.12},
        reasons=reasons
        if reasons is not None
        else [
            {"category": "toxicity", "score": 0.62, "threshold": 0.5, "action": "hold", "scorer": "detoxify"},
            {"category": "review_all", "score": 1.0, "threshold": 0.0, "action": "hold", "scorer": "policy"},
        ],
        spans=spans if spans is not None else [],
        scorers=[{"name": "wordlist", "version": "1"}],
        generated_tokens=12,
        prompt_tokens=5,
        finish_reason="length",
    )
    ticket = item.output.ticket
    assert ticket is not None
    return item.id, ticket


CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')
SECRET = "test-session-secret-0123456789abcdef"


def csrf_of(html: str) -> str:
    found = CSRF_META.search(html)
    assert found, "page has no CSRF token"
    return found.group(1)


class WebHarness:
    """A migrated SQLite database (or the empty database at ``url``), reviewers ``rita`` (reviewer),
    ``ravi`` (reviewer) and ``ada`` (admin), and the web app over it, for Starlette TestClient tests."""

    def __init__(
        self, tmp: Path, *, url: str | None = None, settings: dict[str, Any] | None = None, **app_kwargs: Any
    ) -> None:
        self.url = url or f"sqlite:///{tmp / 'web.db'}"
        migrate.upgrade(self.url)
        self.engine = make_engine(self.url)
        self.sessions = make_session_factory(self.engine)
        with self.sessions() as s, s.begin():
            for name, role in (("rita", "reviewer"), ("ravi", "reviewer"), ("ada", "admin")):
                create_reviewer(session=s, username=name, password=PASSWORD, role=role)
        self.app = create_app(
            sessions=self.sessions,
            settings=Settings(database_url=self.url, **(settings or {})),
            secret=SECRET,
            **app_kwargs,
        )

    def hold(self, **kwargs: Any) -> tuple[str, str]:
        with self.sessions() as s, s.begin():
            return hold_output(s, **kwargs)

    def client(self, username: str | None = None, **kwargs: Any) -> TestClient:
        """A browser-like client, logged in as ``username`` when given."""
        client = TestClient(self.app, follow_redirects=False, **kwargs)
        if username is not None:
            token = csrf_of(client.get("/login").text)
            reply = client.post(
                "/login", data={"username": username, "password": PASSWORD, "csrf_token": token}
            )
            assert reply.status_code == 303, reply.text
        return client

    def close(self) -> None:
        self.engine.dispose()


def page_csrf(client: TestClient, path: str = "/queue") -> str:
    return csrf_of(client.get(path).text)
