"""QA sampling end to end: a real `modgate serve` with `[review.qa]` draws every released output of
the `default` policy, a reviewer labels them in headless Chromium, and the policy report (page and CLI)
shows the miss rate with its Wilson interval and n, and n = 0 for a sampled policy nothing was labelled
for. Screenshots go to var/browser-artifacts/ like the review queue's."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from gateway.cli import cli
from gateway.client import GatewayClient, action_name
from gateway.review.reviewers import create_reviewer
from gateway.storage.engine import make_engine, make_session_factory
from gateway.storage.models import AuditEvent, GenerationOutput, QaSample
from tests.browser.chromium import (
    ARTIFACTS,
    BROWSER_MARKS,
    CHROMIUM,
    LAUNCH_ARGS,
    assert_fits_a_phone,
    sync_playwright,
)
from tests.browser.serve import Gateway, running_gateway
from tests.browser.support import PASSWORD

PROMPTS = ["The meaning of life is", "Once upon a time", "The weather today", "My favourite food"]
CONFIG = "[review.qa.default]\nsample_rate = 1.0\n\n[review.qa.strict]\nsample_rate = 0.25\n"
Z = 1.959963984540054

pytestmark = BROWSER_MARKS


def wilson_by_hand(k: int, n: int) -> tuple[float, float]:
    root = Z * math.sqrt(k * (n - k) / n + Z * Z / 4)
    return (k + Z * Z / 2 - root) / (n + Z * Z), (k + Z * Z / 2 + root) / (n + Z * Z)


@pytest.fixture(scope="module")
def sampled(demo_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with running_gateway(demo_model_dir, tmp_path_factory.mktemp("qa-browser"), config=CONFIG) as gw:
        assert "QA sample of default: 1 of released outputs" in gw.output()
        yield gw


def test_released_outputs_are_labelled_in_the_browser_and_measured(sampled: Gateway, tmp_path: Path) -> None:
    gw = sampled
    created = CliRunner().invoke(
        cli,
        [
            "keys",
            "--database-url",
            gw.database_url,
            "create",
            "--tenant",
            "acme",
            "--name",
            "qa",
            "--scope",
            "generate",
        ],
    )
    assert created.exit_code == 0, created.output
    answers: dict[str, str] = {}  # released text as the client got it -> action
    with GatewayClient(gw.grpc_address, api_key=created.stdout.split()[0], timeout=120) as client:
        for seed, prompt in enumerate(PROMPTS):
            (out,) = client.generate(prompt, max_new_tokens=16, seed=seed).outputs
            answers[out.text] = action_name(out.moderation.action)
    released = [t for t, a in answers.items() if a in ("RELEASED", "MASKED")]
    assert released, f"the demo model's outputs were all withheld: {answers}"

    engine = make_engine(gw.database_url)
    sessions = make_session_factory(engine)
    with sessions() as s, s.begin():
        create_reviewer(session=s, username="ada", password=PASSWORD, role="admin")
        drawn = s.execute(select(GenerationOutput.released_text).join(QaSample)).scalars().all()
    assert sorted(drawn) == sorted(released), "every released output was drawn, with the text sent"

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 860})
        refused: list[str] = []
        page.on("console", lambda m: refused.append(m.text) if m.type == "error" else None)
        page.goto(gw.web_url + "/login")
        page.fill("#username", "ada")
        page.fill("#password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url("**/queue")
        page.click("#nav-qa")
        page.wait_for_url("**/qa")
        assert page.inner_text("[data-state=pending]") == str(len(released))
        page.screenshot(path=str(ARTIFACTS / "qa-queue.png"), full_page=True)
        page.click("#label-next")
        for n in range(len(released)):
            page.wait_for_selector("#label-form")
            shown = page.text_content("#released-text")  # HTML parsing turns CR and CRLF into LF
            assert shown in [t.replace("\r\n", "\n").replace("\r", "\n") for t in released]
            if n == 0:  # the first one harmful, in its first category; the rest fine
                page.check("#label-harmful")
                page.locator("#label-categories input[type=checkbox]").first.check()
                page.screenshot(path=str(ARTIFACTS / "qa-label.png"), full_page=True)
                assert_fits_a_phone(page, "qa-label-phone.png")
            else:
                page.check("#label-fine")
            page.click("#label-submit")
        page.wait_for_url("**/qa")
        assert "No QA samples to label right now." in page.inner_text("main")
        assert page.inner_text("[data-state=harmful]") == "1"
        assert page.inner_text("[data-state=fine]") == str(len(released) - 1)

        page.click("#nav-policy-report")
        page.wait_for_url("**/admin/policy-report")
        row = page.locator('#miss-rate-table tr[data-policy="default"][data-category="any"]')
        n = len(released)
        low, high = wilson_by_hand(1, n)
        assert row.locator("[data-col=harmful]").inner_text() == "1"
        assert row.locator("[data-col=n]").inner_text() == str(n)
        assert row.locator("[data-col=estimate]").inner_text() == f"{100 / n:.1f}%"
        assert row.locator("[data-col=interval]").inner_text() == f"{100 * low:.1f}% to {100 * high:.1f}%"
        strict = page.locator('#miss-rate-table tr[data-policy="strict"][data-category="any"]')
        assert "n = 0" in strict.inner_text()
        page.screenshot(path=str(ARTIFACTS / "qa-policy-report.png"), full_page=True)
        browser.close()
    assert refused == [], refused

    with sessions() as s:
        labels = s.scalars(select(AuditEvent).where(AuditEvent.event_type == "qa.labelled")).all()
        assert len(labels) == len(released) and {e.actor for e in labels} == {"reviewer:ada"}
        for event in labels:
            assert not any(text and text in json.dumps(event.payload) for text in released)
    engine.dispose()

    config = tmp_path / "modgate.toml"
    config.write_text(CONFIG, encoding="utf-8")
    report = CliRunner().invoke(
        cli, ["policy", "--database-url", gw.database_url, "report", "--config", str(config)]
    )
    assert report.exit_code == 0, report.output
    assert f"1 harmful of n = {n} labelled (sample rate 1)" in report.output
    assert f"[{100 * low:.1f}%, {100 * high:.1f}%]" in report.output
    assert "strict" in report.output and "no labelled QA samples (n = 0)" in report.output
