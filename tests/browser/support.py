"""Helpers shared by the web tests (fast TestClient tests and the browser tests): held items made
through the real data layer, the way the gateway's recorder makes them."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.orm import Session

from gateway.review.queue import create_review_item
from gateway.storage.models import ModerationAction
from gateway.storage.records import record_output, record_request

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
    escalated: bool = False,
    priority: float | None = None,
) -> tuple[str, str]:
    """Record one held output and queue it; returns (item id, ticket)."""
    request = record_request(
        session=session,
        request_id=f"req-{uuid.uuid4().hex[:12]}",
        tenant=tenant,
        model_id="demo-gpt-neo",
        prompt_count=1,
        parameters=parameters if parameters is not None else {"temperature": 0.7, "max_new_tokens": 24},
    )
    output = record_output(
        session=session,
        request=request,
        prompt_index=0,
        sequence_index=0,
        prompt=prompt,
        generated_text=text,
        action=ModerationAction.HOLD,
        policy_name=policy,
        policy_version="test",
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
    item = create_review_item(session=session, output=output, escalated=escalated, priority=priority)
    assert output.ticket is not None
    return item.id, output.ticket
