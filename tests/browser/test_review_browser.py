"""The reviewer web queue in a real browser, against a real `modgate serve` process.

Debian's headless Chromium (``/usr/bin/chromium``, installed by ``make browser-deps``) is driven by
Playwright for Python; no browser is ever downloaded. The gateway runs the demo model with offline
moderation on a temporary SQLite database and free ports; a client key with the ``strict`` policy
(every output held) produces the held items. A reviewer then logs in, approves, edits and rejects with
the keyboard and the mouse, and the gRPC client receives exactly what was decided. Script planted in a
prompt and in an output must render as text and never run. Screenshots of the queue and the review page
are saved under ``var/browser-artifacts/`` (``MODGATE_BROWSER_ARTIFACTS`` to change it).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from click.testing import CliRunner
from sqlalchemy import select

from gateway.api.v1 import generation_pb2 as gen_pb
from gateway.cli import cli
from gateway.client import GatewayClient, action_name
from gateway.review.reviewers import create_reviewer
from gateway.storage.engine import make_engine, make_session_factory
from gateway.storage.models import GenerationOutput, ReviewItem
from moderation.policy import STRICT
from tests.browser.chromium import (
    ARTIFACTS,
    BROWSER_MARKS,
    CHROMIUM,
    LAUNCH_ARGS,
    assert_fits_a_phone,
    sync_playwright,
)
from tests.browser.serve import Gateway, generated_texts, result, running_gateway
from tests.browser.support import PASSWORD, XSS_OUTPUT, XSS_PROMPT, hold_output

PROMPTS = ["The meaning of life is", "Once upon a time", "The weather today", XSS_PROMPT]
SHOWCASE_TEXT = (
    "The meaning of life is to damn well enjoy the small things, said the old philosopher, "
    "and anyone who disagrees is an idiot."
)

if sync_playwright is not None:
    from playwright.sync_api import Page

pytestmark = BROWSER_MARKS


@pytest.fixture(scope="module")
def gateway(demo_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with running_gateway(demo_model_dir, tmp_path_factory.mktemp("browser")) as gw:
        yield gw
    output = gw.output()
    assert f"reviewer web queue listening on {gw.web_url}/" in output, output
    assert "web server stopped" in output, output


@pytest.fixture(scope="module")
def populated(gateway: Gateway) -> Gateway:
    """A strict client key and its held outputs; reviewers; two items planted through the data layer."""
    created = CliRunner().invoke(
        cli,
        [
            *("keys", "--database-url", gateway.database_url, "create", "--tenant", "acme"),
            *("--name", "browser", "--scope", "generate", "--policy", "strict"),
        ],
    )
    assert created.exit_code == 0, created.output
    gateway.key = created.stdout.split()[0]
    try:
        with GatewayClient(gateway.grpc_address, api_key=gateway.key, timeout=120) as client:
            for seed, prompt in enumerate(PROMPTS):
                (out,) = client.generate(prompt, max_new_tokens=16, seed=seed).outputs
                assert action_name(out.moderation.action) == "HELD" and out.ticket and not out.text
                gateway.held[out.ticket] = prompt
    except (grpc.RpcError, AssertionError) as exc:
        raise AssertionError(f"generating held outputs failed: {exc}\n{gateway.output()}") from exc
    engine = make_engine(gateway.database_url)
    with make_session_factory(engine)() as s, s.begin():
        create_reviewer(session=s, username="ada", password=PASSWORD, role="admin")
        start = SHOWCASE_TEXT.index("damn")
        idiot = SHOWCASE_TEXT.index("idiot")
        _, showcase = hold_output(
            s,
            prompt="The meaning of life is",
            text=SHOWCASE_TEXT,
            spans=[
                {"start": start, "end": start + 4, "category": "profanity", "scorer": "wordlist"},
                {"start": idiot, "end": idiot + 5, "category": "profanity", "scorer": "wordlist"},
            ],
            scores={"profanity_ml": 0.83, "profanity": 1.0},
            reasons=[
                {"category": "profanity_ml", "score": 0.83, "threshold": 0.6, "action": "hold"},
                {"category": "profanity", "score": 1.0, "threshold": 1.0, "action": "hold"},
                {"category": "review_all", "score": 1.0, "threshold": 0.0, "action": "hold"},
            ],
            parameters={"temperature": 0.8, "top_p": 0.95, "max_new_tokens": 32, "seed": 1234},
            policy_version=STRICT.version,
            priority=0.99,
        )
        _, planted = hold_output(s, prompt="Summarise the page", text=XSS_OUTPUT, priority=0.9)
    engine.dispose()
    gateway.held[showcase] = "showcase"
    gateway.held[planted] = "planted"
    return gateway


def assert_no_script_ran(page: Page) -> None:
    state = page.evaluate(
        "() => [window.__pwned === undefined, document.body.dataset.pwned === undefined,"
        " document.getElementById('injected') === null, document.querySelectorAll('main img').length]"
    )
    assert state == [True, True, True, 0], state


def test_reviewer_decides_held_outputs_in_the_browser(populated: Gateway) -> None:
    gw = populated
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    dialogs: list[str] = []
    decided: dict[str, tuple[str, str | None]] = {}  # ticket -> (decision, edited text)
    plan = iter(["edit", "reject", "approve-click", "approve"])
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 860})
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))

        page.goto(gw.web_url + "/queue")
        assert "/login" in page.url
        page.fill("#username", "ada")
        page.fill("#password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url("**/queue")
        rows = page.locator("tr.item-row")
        assert rows.count() == len(gw.held)
        assert page.locator('[data-state="pending"]').inner_text() == str(len(gw.held))
        page.screenshot(path=str(ARTIFACTS / "queue.png"), full_page=True)
        assert_fits_a_phone(page, "queue-phone.png")

        # New items show up without a reload (queue.js polls the rows partial).
        engine = make_engine(gw.database_url)
        with make_session_factory(engine)() as s, s.begin():
            _, late = hold_output(s, tenant="latecomer", priority=0.01)
        engine.dispose()
        gw.held[late] = "late"
        page.locator("tr.item-row", has_text="latecomer").wait_for(timeout=15_000)
        assert rows.count() == len(gw.held)

        # j/k move through the rows, Enter opens one (read-only until claimed), u goes back.
        page.keyboard.press("j")
        page.keyboard.press("j")
        page.keyboard.press("k")
        assert page.locator("tr.item-row.selected").count() == 1
        assert page.locator("tr.item-row").first.get_attribute("aria-selected") == "true"
        page.keyboard.press("Enter")
        page.wait_for_url("**/items/*")
        assert "Pending." in page.inner_text("[role=status]") and page.locator("#approve-form").count() == 0
        page.keyboard.press("u")
        page.wait_for_url("**/queue")

        for _ in range(len(gw.held)):
            # Review next claims the most urgent item; its page renews the lease at once (heartbeat).
            with page.expect_response(lambda r: r.url.endswith("/lease")) as hb:
                page.keyboard.press("n")
            assert hb.value.status == 200 and hb.value.json()["seconds_left"] > 250
            page.wait_for_url("**/items/*")
            ticket = page.inner_text("#ticket")
            assert ticket in gw.held, ticket
            assert page.locator("#lease-left").is_visible()
            assert_no_script_ran(page)
            origin = gw.held[ticket]
            if origin == "showcase":
                assert page.locator("mark.flag").count() == 2
                page.screenshot(path=str(ARTIFACTS / "review.png"), full_page=True)
                assert_fits_a_phone(page, "review-phone.png")
                page.keyboard.press("a")
                decided[ticket] = ("approve", None)
            elif origin == "planted":
                assert page.inner_text("#output-text") == XSS_OUTPUT, "the output is shown as text"
                assert page.input_value("#edited-text") == XSS_OUTPUT, "the editor holds it as text too"
                page.click("#reject-toggle")
                page.fill("#reject-reason", "script in the output")
                page.click("#reject-submit")
                decided[ticket] = ("reject", None)
            else:
                if origin == XSS_PROMPT:
                    assert page.inner_text("#prompt-text") == XSS_PROMPT, "the prompt is shown as text"
                decision = next(plan, "approve") if origin != "late" else "approve"
                if decision == "edit":
                    page.keyboard.press("e")
                    assert page.evaluate("document.activeElement.id") == "edited-text"
                    edited = f"An edited, harmless text for {ticket[-6:]}.\nSecond line."
                    page.fill("#edited-text", edited)
                    page.keyboard.press("Control+Enter")
                    decided[ticket] = ("edit", edited)
                elif decision == "reject":
                    page.keyboard.press("r")
                    page.keyboard.type("gibberish, not useful")
                    page.keyboard.press("Enter")
                    decided[ticket] = ("reject", None)
                elif decision == "approve-click":
                    page.click("#approve-btn")
                    decided[ticket] = ("approve", None)
                else:
                    page.keyboard.press("a")
                    decided[ticket] = ("approve", None)
            page.wait_for_url("**/queue")
            assert ticket in page.inner_text(".flash"), "the decision is confirmed"
            assert_no_script_ran(page)

        assert page.locator("tr.item-row").count() == 0 and "The queue is empty." in page.content()
        assert {d for d, _ in decided.values()} == {"approve", "edit", "reject"}

        # A form posted without the CSRF token is refused, with the session cookie and all.
        forged = page.request.post(gw.web_url + "/queue/claim", form={"x": "1"}, max_redirects=0)
        assert forged.status == 403

        page.goto(gw.web_url + "/audit?event_type=review.*")
        page.locator("#verify.ok").wait_for(timeout=15_000)
        assert "Chain intact" in page.inner_text("#verify-text")
        page.screenshot(path=str(ARTIFACTS / "audit.png"))
        browser.close()
    assert dialogs == [], f"script ran: {dialogs}"

    texts = generated_texts(gw)
    for ticket, (decision, edited) in decided.items():
        if gw.held[ticket] == "late":
            continue  # another tenant's: NOT_FOUND for this key, by design
        got = result(gw, ticket)
        if decision == "approve":
            assert got.state == gen_pb.RESULT_STATE_APPROVED and got.text == texts[ticket]
        elif decision == "edit":
            assert got.state == gen_pb.RESULT_STATE_EDITED and got.text == edited
        else:
            assert got.state == gen_pb.RESULT_STATE_REJECTED and got.text == ""


def test_admin_replays_an_item_and_reads_the_policy_report(populated: Gateway) -> None:
    """The Replay button regenerates through the served process's own batcher and moderator (the same
    seed and policy: identical); the report page loads its plot as an image under the strict CSP."""
    gw = populated
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    ticket = next(t for t, origin in gw.held.items() if origin in PROMPTS)
    engine = make_engine(gw.database_url)
    try:
        with make_session_factory(engine)() as s:
            item_id = s.scalars(
                select(ReviewItem.id).join(GenerationOutput).where(GenerationOutput.ticket == ticket)
            ).one()
    finally:
        engine.dispose()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 860})
        refused: list[str] = []  # the console reports every CSP refusal
        page.on("console", lambda m: refused.append(m.text) if m.type == "error" else None)
        page.goto(gw.web_url + "/login")
        page.fill("#username", "ada")
        page.fill("#password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url("**/queue")

        page.goto(f"{gw.web_url}/items/{item_id}")
        page.click("#replay-btn")
        page.locator("#replay-result").wait_for(timeout=60_000)
        outcome = page.inner_text("#replay-result")
        assert f"Replay of {ticket}: identical" in outcome and "text: identical" in outcome, outcome

        page.click("#nav-policy-report")
        page.wait_for_url("**/admin/policy-report")
        page.wait_for_function("document.getElementById('report-plot').complete")
        assert page.eval_on_selector("#report-plot", "img => img.naturalWidth") == 640, "the SVG loaded"
        assert int(page.inner_text("#total-outputs")) >= len(PROMPTS), "the strict key's outputs count"
        page.screenshot(path=str(ARTIFACTS / "policy-report.png"), full_page=True)
        assert_fits_a_phone(page, "policy-report-phone.png")
        browser.close()
    assert refused == [], refused


def _copy_artifacts(names: list[str], target: Path) -> list[Any]:  # pragma: no cover - a maintainer aid
    """``python -c 'from tests.browser.test_review_browser import *; _copy_artifacts(...)'``."""
    return [shutil.copy(ARTIFACTS / n, target / n) for n in names]
