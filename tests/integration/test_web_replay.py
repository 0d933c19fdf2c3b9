"""The review page's additions: the admins' Replay button, run against a real GatewayServer (demo model,
its own batcher and moderator, the web queue on a free port), and the identity-term checks and shadow
decisions recorded with an output, escaped like every other stored text."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from gateway.audit import events
from gateway.audit.query import query as audit_query
from gateway.client import GatewayClient
from gateway.generation.generator import Generator
from gateway.review.reviewers import create_reviewer
from gateway.server import GatewayServer
from gateway.storage.engine import make_engine, make_session_factory
from gateway.storage.models import GenerationOutput, ReviewItem
from moderation.identity import IdentityTerms
from moderation.types import Action
from tests.browser.support import CSRF_META, PASSWORD, WebHarness, csrf_of
from tests.integration.conftest import (
    FLAG_SEED,
    FLAG_TOKENS,
    PROMPT,
    gateway_components,
    policy_for,
    word_moderator,
)
from tests.support.held import hold_output

REPLAY_SECTION = re.compile(r'<section class="banner replay-result.*?</section>', re.S)


def replay_section(html: str) -> str:
    found = REPLAY_SECTION.search(html)
    assert found, "no replay result on the page"
    return found.group(0)


async def login(client: httpx.AsyncClient, username: str) -> None:
    token = csrf_of((await client.get("/login")).text)
    reply = await client.post(
        "/login", data={"username": username, "password": PASSWORD, "csrf_token": token}
    )
    assert reply.status_code == 303, reply.text


async def test_replay_button_on_a_real_gateway(generator: Generator, db_url: str, flag_word: str) -> None:
    engine = make_engine(db_url)
    sessions = make_session_factory(engine)
    hold, block = policy_for(Action.HOLD), policy_for(Action.BLOCK)
    moderator = word_moderator(flag_word, hold, block, shadow_policies=(block.name,))
    components = gateway_components(generator, moderator, engine)
    admin_name, reviewer_name = f"ada{uuid.uuid4().hex[:8]}", f"rita{uuid.uuid4().hex[:8]}"
    with sessions() as s, s.begin():
        create_reviewer(session=s, username=admin_name, password=PASSWORD, role="admin")
        create_reviewer(session=s, username=reviewer_name, password=PASSWORD)
    server = GatewayServer(components, address="127.0.0.1:0", web_address="127.0.0.1:0")
    await server.start()
    try:
        assert server.web is not None

        def generate() -> str:
            with GatewayClient(f"127.0.0.1:{server.port}") as client:
                (out,) = client.generate(PROMPT, max_new_tokens=FLAG_TOKENS, seed=FLAG_SEED).outputs
            assert out.ticket, "the flagged word is held"
            return str(out.ticket)

        ticket = await asyncio.to_thread(generate)
        with sessions() as s:
            item_id = s.scalars(
                select(ReviewItem.id).join(GenerationOutput).where(GenerationOutput.ticket == ticket)
            ).one()
        base = server.web.url.rstrip("/")
        async with (
            httpx.AsyncClient(base_url=base) as admin,
            httpx.AsyncClient(base_url=base) as reviewer,
        ):
            await login(admin, admin_name)
            page = (await admin.get(f"/items/{item_id}")).text
            assert 'id="replay-form"' in page and 'action="/items/' + item_id + '/replay"' in page
            # The shadow decision the real moderator recorded: test-block would have blocked it.
            assert re.search(
                r'data-policy="test-block">\s*<strong>test-block</strong>.*?chip-block', page, re.S
            )

            token = csrf_of(page)
            same = await admin.post(f"/items/{item_id}/replay", data={"csrf_token": token})
            assert same.status_code == 200, same.text
            section = replay_section(same.text)
            assert 'data-identical="true"' in section and f"{ticket}</code>: identical" in section
            assert "text: identical" in section and "decision: identical" in section
            assert 'id="replay-btn">Replay again<' in same.text

            refused = await admin.post(f"/items/{item_id}/replay", data={"csrf_token": "forged"})
            assert refused.status_code == 403

            # The record no longer matches what the model and the moderator do now: a different text,
            # a policy version and a model id that are not (and would be markup if not escaped).
            with sessions() as s, s.begin():
                output = s.scalars(select(GenerationOutput).where(GenerationOutput.ticket == ticket)).one()
                output.generated_text = "something else entirely"
                output.policy_version = "<script>v</script>"
                output.request.model_id = "<b>m</b>"
            changed = await admin.post(f"/items/{item_id}/replay", data={"csrf_token": token})
            assert changed.status_code == 200, changed.text
            section = replay_section(changed.text)
            assert 'data-identical="false"' in section and ": DIFFERENT" in section
            assert "text: differs" in section
            assert "decision: policy_version: recorded &#39;&lt;script&gt;v&lt;/script&gt;&#39;" in section
            assert "note: recorded model &lt;b&gt;m&lt;/b&gt;@" in section
            assert "<script>v" not in changed.text and "<b>m</b>" not in changed.text
            assert flag_word not in section, "the replay never shows text"
            with sessions() as s:
                replays = audit_query(session=s, ticket=ticket, event_type=events.OUTPUT_REPLAYED)
                assert [(e.actor, e.action) for e in replays] == [
                    (f"reviewer:{admin_name}", "identical"),
                    (f"reviewer:{admin_name}", "different"),
                ], "each replay from the web queue is an audit event"
                # Notes: the recorded model, and the recorded policy version that was never stored.
                assert replays[1].payload == {"text_identical": False, "decision_differences": 1, "notes": 2}
                assert flag_word not in str(replays[1].payload)

            # Reviewers see no button and may not replay.
            await login(reviewer, reviewer_name)
            as_reviewer = (await reviewer.get(f"/items/{item_id}")).text
            assert "replay-form" not in as_reviewer
            token = CSRF_META.search(as_reviewer).group(1)  # type: ignore[union-attr]
            forbidden = await reviewer.post(f"/items/{item_id}/replay", data={"csrf_token": token})
            assert forbidden.status_code == 403 and "for admins" in forbidden.text
    finally:
        await server.stop(grace=0)
        engine.dispose()


@pytest.fixture
def web(tmp_path: Path) -> Iterator[WebHarness]:
    custom = IdentityTerms({"martian": "being", "muslim": "person"})
    harness = WebHarness(tmp_path, identity_terms=custom)
    yield harness
    harness.close()


def test_without_a_replay_callable_there_is_no_button(web: WebHarness) -> None:
    item_id, _ = web.hold()
    admin = web.client("ada")
    page = admin.get(f"/items/{item_id}").text
    assert "replay-form" not in page and 'id="replay-card"' not in page
    reply = admin.post(f"/items/{item_id}/replay", data={"csrf_token": csrf_of(page)})
    assert reply.status_code == 404 and "replay is not available here" in reply.text


def hold_with_checks(web: WebHarness, identity_checks: list[Any], shadow: list[Any]) -> str:
    with web.sessions() as s, s.begin():
        return hold_output(
            s,
            request_id=uuid.uuid4().hex,
            text="text",
            policy_version="v1",
            scores={"identity_attack": 0.95, "toxicity": 0.62},
            reasons=[{"category": "identity_attack", "score": 0.95, "threshold": 0.8, "action": "hold"}],
            identity_checks=identity_checks,
            shadow=shadow,
        ).id


def check(
    category: str, original: float, neutral: float, threshold: float, terms: list[str], **kw: Any
) -> Any:
    return {
        "category": category,
        "original_score": original,
        "neutral_score": neutral,
        "threshold": threshold,
        "substituted_terms": terms,
        "softened": kw.get("softened", False),
        "terms_version": kw.get("terms_version", IdentityTerms.builtin().version),
    }


def test_identity_checks_and_shadow_decisions_are_shown_escaped(web: WebHarness) -> None:
    custom_version = IdentityTerms({"martian": "being", "muslim": "person"}).version
    item_id = hold_with_checks(
        web,
        [
            check("identity_attack", 0.95, 0.10, 0.8, ["muslim"], softened=True),
            check("toxicity", 0.62, 0.55, 0.5, ["<script>x</script>"], terms_version="identity-terms-gone"),
            check("insult", 0.7, 0.2, 0.6, ["martian"], terms_version=custom_version),
        ],
        [
            {
                "policy_name": "strict",
                "policy_version": "s1",
                "action": "block",
                "reasons": [{"category": "toxicity", "score": 0.62, "threshold": 0.5, "action": "block"}],
            },
            {"policy_name": "<b>pwn</b>", "policy_version": "x", "action": "release", "reasons": []},
        ],
    )
    client = web.client("rita")
    html = client.get(f"/items/{item_id}").text
    text = " ".join(re.sub(r"<[^>]+>", " ", html).split())
    assert (
        "identity_attack 0.95 as written, 0.10 with identity terms neutralised (muslim → person); "
        "block softened to hold" in text
    )
    assert (
        "toxicity 0.62 as written, 0.55 with identity terms neutralised (&lt;script&gt;x&lt;/script&gt; "
        "replaced); still at or over the threshold 0.50 without them" in text
    ), "an unknown term list: the term without a substitute"
    assert "insult 0.70 as written, 0.20 with identity terms neutralised (martian → being); below" in text
    assert "strict s1 would block toxicity 0.62 ≥ 0.50" in text
    assert "&lt;b&gt;pwn&lt;/b&gt; x would release" in text
    assert "<script>x" not in html and "<b>pwn" not in html
    # An output without either shows neither card.
    plain_id, _ = web.hold()
    plain = client.get(f"/items/{plain_id}").text
    assert 'id="identity-checks"' not in plain and 'id="shadow-decisions"' not in plain


def test_the_admin_replay_route_checks_the_role_before_anything(web: WebHarness) -> None:
    item_id, _ = web.hold()
    rita: TestClient = web.client("rita")
    token = csrf_of(rita.get(f"/items/{item_id}").text)
    assert rita.post(f"/items/{item_id}/replay", data={"csrf_token": token}).status_code == 403
    assert rita.post(f"/items/{item_id}/replay", data={}).status_code == 403  # no CSRF token either
    ada = web.client("ada")
    missing = ada.post("/items/nope/replay", data={"csrf_token": csrf_of(ada.get("/queue").text)})
    assert missing.status_code == 404
