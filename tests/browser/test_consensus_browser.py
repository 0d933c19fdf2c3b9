"""Several reviewers per item, end to end against a real `modgate serve` with
`[review.consensus.strict] verdicts = 2`: a reviewer gives verdicts in the browser, a second one through
gRPC, the client sees only the final outcome, a disagreement goes to an admin who sees the verdicts in
the browser and decides, and the policy report shows the agreement."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from click.testing import CliRunner

from gateway.api.v1 import generation_pb2 as gen_pb
from gateway.api.v1 import review_pb2 as rv_pb
from gateway.api.v1 import review_pb2_grpc as rv_grpc
from gateway.cli import cli
from gateway.client import GatewayClient, action_name
from gateway.review.reviewers import create_reviewer
from gateway.storage.engine import make_engine, make_session_factory
from tests.browser.chromium import ARTIFACTS, BROWSER_MARKS, CHROMIUM, LAUNCH_ARGS, sync_playwright
from tests.browser.serve import Gateway, generated_texts, result, running_gateway
from tests.browser.support import PASSWORD

if sync_playwright is not None:
    from playwright.sync_api import Page

pytestmark = BROWSER_MARKS

CONFIG = """
[review.consensus.strict]
verdicts = 2
rule = "unanimous"
"""


def cli_ok(*args: str) -> str:
    done = CliRunner().invoke(cli, list(args))
    assert done.exit_code == 0, done.output
    return done.stdout


@pytest.fixture(scope="module")
def gateway(demo_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with running_gateway(demo_model_dir, tmp_path_factory.mktemp("consensus"), config=CONFIG) as gw:
        assert "review consensus for strict: 2 verdicts, unanimous" in gw.output()
        engine = make_engine(gw.database_url)
        with make_session_factory(engine)() as s, s.begin():
            create_reviewer(session=s, username="rita", password=PASSWORD, role="reviewer")
            create_reviewer(session=s, username="ravi", password=PASSWORD, role="reviewer")
            create_reviewer(session=s, username="ada", password=PASSWORD, role="admin")
        engine.dispose()
        db = ("keys", "--database-url", gw.database_url, "create")
        gw.key = cli_ok(
            *db, "--tenant", "acme", "--name", "c", "--scope", "generate", "--policy", "strict"
        ).split()[0]
        ravi = cli_ok(
            *db, "--tenant", "staff", "--name", "r", "--scope", "review", "--reviewer", "ravi"
        ).split()[0]
        with GatewayClient(gw.grpc_address, api_key=gw.key, timeout=120) as client:
            for seed, prompt in enumerate(["Once upon a time", "The weather today"]):
                (out,) = client.generate(prompt, max_new_tokens=12, seed=seed).outputs
                assert action_name(out.moderation.action) == "HELD" and out.ticket
                gw.held[out.ticket] = ravi  # the gRPC reviewer's key rides along
        yield gw


def login(page: Page, gw: Gateway, username: str) -> None:
    page.goto(gw.web_url + "/login")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/queue")


def review_next(page: Page) -> str:
    page.click("#claim-form button[type=submit]")
    page.wait_for_url("**/items/*")
    return page.inner_text("#ticket")


def flash(page: Page) -> str:
    return page.locator(".flash").first.inner_text()


def test_two_reviewers_then_an_admin(gateway: Gateway) -> None:
    gw = gateway
    tickets = set(gw.held)
    ravi_key = next(iter(gw.held.values()))
    md = (("authorization", f"Bearer {ravi_key}"),)
    texts = generated_texts(gw)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)

        # rita gives the first verdict on both items in the browser: approve.
        rita = browser.new_page(viewport={"width": 1280, "height": 860})
        login(rita, gw, "rita")
        seen = []
        for _ in tickets:
            seen.append(review_next(rita))
            assert rita.inner_text("#verdicts-required") == "2" and rita.inner_text("#verdicts-given") == "0"
            rita.click("#approve-btn")
            rita.wait_for_url("**/queue")
            assert "goes to another reviewer" in flash(rita)
        assert set(seen) == tickets, "rita was handed each item once"
        assert rita.locator(".badge.verdicts").all_inner_texts() == ["1 of 2 verdicts"] * 2
        rita.screenshot(path=str(ARTIFACTS / "consensus-queue.png"), full_page=True)
        rita.click("#claim-form button[type=submit]")
        rita.wait_for_url("**/queue")
        assert "Nothing to review" in flash(rita), "an item is never handed to a reviewer twice"

        # ravi, through gRPC on the same server: sees counts, never rita's verdict; agrees on one item.
        with grpc.insecure_channel(gw.grpc_address) as channel:
            stub = rv_grpc.ReviewServiceStub(channel)
            listed = stub.ListItems(rv_pb.ListItemsRequest(), metadata=md).items
            assert {(i.verdicts_required, i.verdicts_given) for i in listed} == {(2, 1)}
            first = stub.ClaimNext(rv_pb.ClaimNextRequest(lease_seconds=60), metadata=md).item
            assert first.verdicts_given == 1 and len(first.verdicts) == 0
            agreed = stub.Decide(
                rv_pb.DecideRequest(
                    item_id=first.id, expected_version=first.version, decision=rv_pb.REVIEW_DECISION_APPROVE
                ),
                metadata=md,
            )
            assert agreed.state == rv_pb.REVIEW_STATE_APPROVED and agreed.decided_by == ""
            assert agreed.decision_reason == "consensus (unanimous, 2 of 2 verdicts: 2 approve)"
            released = result(gw, first.ticket)
            assert released.state == gen_pb.RESULT_STATE_APPROVED and released.text == texts[first.ticket]

            second = stub.ClaimNext(rv_pb.ClaimNextRequest(lease_seconds=60), metadata=md).item
            assert result(gw, second.ticket).state == gen_pb.RESULT_STATE_PENDING
            split = stub.Decide(
                rv_pb.DecideRequest(
                    item_id=second.id,
                    expected_version=second.version,
                    decision=rv_pb.REVIEW_DECISION_REJECT,
                    reason="ravi: not suitable",
                ),
                metadata=md,
            )
            assert split.state == rv_pb.REVIEW_STATE_PENDING and split.escalated and split.verdicts_given == 2
            assert len(split.verdicts) == 0, "a reviewer never sees the verdicts"
            pending = result(gw, second.ticket)
            assert pending.state == gen_pb.RESULT_STATE_PENDING and pending.text == ""
            assert not stub.ClaimNext(rv_pb.ClaimNextRequest(lease_seconds=60), metadata=md).HasField("item")

        # ada, an admin, decides the disagreement in the browser, seeing both verdicts.
        ada = browser.new_page(viewport={"width": 1280, "height": 860})
        login(ada, gw, "ada")
        assert review_next(ada) == second.ticket
        verdicts = ada.locator("#verdicts li")
        assert [
            (v.get_attribute("data-reviewer"), v.get_attribute("data-decision")) for v in verdicts.all()
        ] == [
            ("rita", "approve"),
            ("ravi", "reject"),
        ]
        assert "ravi: not suitable" in ada.inner_text("#verdicts")
        ada.screenshot(path=str(ARTIFACTS / "consensus-escalated.png"), full_page=True)
        ada.click("#reject-toggle")
        ada.fill("#reject-reason", "admin: agrees with ravi")
        ada.click("#reject-submit")
        ada.wait_for_url("**/queue")
        assert flash(ada).startswith("Rejected")
        final = result(gw, second.ticket)
        assert final.state == gen_pb.RESULT_STATE_REJECTED and final.text == ""

        # The policy report: two items with two verdicts each, one agreeing pair.
        ada.goto(gw.web_url + "/admin/policy-report")
        row = ada.locator('#agreement-table tr[data-policy="strict"][data-category="(all)"]')
        assert row.locator('[data-col="items"]').inner_text() == "2"
        assert row.locator('[data-col="raw"]').inner_text() == "50.0%"
        browser.close()
    assert "Traceback" not in gw.output()
