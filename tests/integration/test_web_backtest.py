"""The policy backtest page (admins only): a logged-in admin pastes or uploads a policy, and the tables
match a database with known decisions and verdicts; bad input is a 400 that names the problem and keeps
the form; CSRF and the admin role are enforced like on every form.

The outputs are recorded with ``record_output`` and their requests completed with
``set_request_status``, as the gateway's recorder does; held ones are decided with ``claim_next`` /
``decide`` (as tests/integration/test_web_report.py does)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html import unescape

import pytest
from sqlalchemy.orm import Session

from gateway.review.queue import claim_next, create_review_item, decide
from gateway.storage.models import GenerationRequest, RequestStatus, Reviewer
from gateway.storage.records import record_request, set_request_status
from moderation.policy import DEFAULT
from tests.browser.support import WebHarness, page_csrf
from tests.support.held import record_one

PAGE = "/admin/policy-backtest"
# (tenant, toxicity, action under `default` (hold >= 0.80), verdict); the "pending" one stays unreviewed
OUTPUTS = [
    ("acme", 0.10, "release", None),
    ("acme", 0.85, "hold", "approve"),
    ("acme", 0.95, "hold", "reject"),
    ("acme", 0.82, "hold", "pending"),
    ("other", 0.60, "release", None),
]
LOOSER = 'extends = "default"\n[thresholds.toxicity]\nhold = 0.9\n'
STRICTER = 'extends = "default"\n[thresholds.toxicity]\nhold = 0.5\nblock = 0.9\n'


def _record(s: Session, request: GenerationRequest, i: int, score: float, action: str) -> object:
    reasons = [{"category": "toxicity", "score": score, "threshold": 0.8, "action": "hold"}]
    return record_one(
        s,
        request=request,
        prompt_index=i,
        text=f"text {i}",
        action=action,
        policy_version=DEFAULT.version,
        scores={"toxicity": score},
        reasons=reasons if action == "hold" else [],
    )


def build_outputs(web: WebHarness) -> None:
    verdict_for: dict[float, str] = {}
    with web.sessions() as s, s.begin():
        for i, (tenant, score, action, verdict) in enumerate(OUTPUTS):
            request = record_request(
                session=s, request_id=f"r{i}", tenant=tenant, model_id="m", prompt_count=1
            )
            out = _record(s, request, 0, score, action)
            set_request_status(session=s, request=request, status=RequestStatus.COMPLETED)
            if verdict is not None:
                create_review_item(session=s, output=out)  # type: ignore[arg-type]
                verdict_for[score] = verdict
        # A stream cancelled after sending a prefix: recorded, but no decision covers it.
        cut = record_request(session=s, request_id="r-cut", tenant="acme", model_id="m", prompt_count=1)
        _record(s, cut, 0, 0.0, "release")
        set_request_status(session=s, request=cut, status=RequestStatus.CANCELLED)
    with web.sessions() as s, s.begin():
        rita = s.query(Reviewer).filter_by(username="rita").one()
        for _ in range(3):  # highest priority first: decide by each item's score, leave "pending" alone
            item = claim_next(session=s, reviewer=rita)
            assert item is not None
            verdict = verdict_for[item.output.scores["toxicity"]]
            if verdict == "pending":
                continue
            decide(
                session=s,
                item_id=item.id,
                reviewer=rita,
                expected_version=item.version,
                decision=verdict,
                reason="no" if verdict == "reject" else None,
            )


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebHarness]:
    harness = WebHarness(tmp_path_factory.mktemp("backtest"), policies={"default": DEFAULT})
    build_outputs(harness)
    yield harness
    harness.close()


def cells(html: str, table: str) -> dict[str, dict[str, int]]:
    """Rows of one result table: data-row -> data-col -> number."""
    body = html.split(f'id="{table}"', 1)[1].split("</table>", 1)[0]
    rows: dict[str, dict[str, int]] = {}
    for row, inner in re.findall(r'<tr data-row="([^"]+)">(.*?)</tr>', body, re.S):
        rows[row] = {c: int(n) for c, n in re.findall(r'data-col="([^"]+)"[^>]*>(\d+)<', inner)}
    return rows


def count(html: str, id_: str) -> int:
    found = re.search(rf'id="{id_}">(\d+)<', html)
    assert found, id_
    return int(found.group(1))


def post(web: WebHarness, fields: dict[str, str], **kwargs: object) -> tuple[int, str]:
    client = web.client("ada")
    data = {"csrf_token": page_csrf(client, PAGE), "name": "", "until": "", "tenant": "", **fields}
    reply = client.post(PAGE, data=data, **kwargs)  # type: ignore[arg-type]
    return reply.status_code, reply.text


def test_a_pasted_looser_policy(web: WebHarness) -> None:
    status, page = post(web, {"since": "2000-01-01T00:00", "policy": LOOSER, "name": "default"})
    assert status == 200, page
    # hold 0.9: 0.85 (approved) and 0.82 (pending) would be released; 0.95 (rejected) still held
    assert cells(page, "matrix-table") == {
        "release": {"release": 2, "mask": 0, "hold": 0, "block": 0},
        "mask": {"release": 0, "mask": 0, "hold": 0, "block": 0},
        "hold": {"release": 2, "mask": 0, "hold": 1, "block": 0},
        "block": {"release": 0, "mask": 0, "hold": 0, "block": 0},
    }
    verdicts = cells(page, "verdict-table")
    assert verdicts["approved"]["release"] == 1 and verdicts["rejected"]["hold"] == 1
    assert verdicts["unreviewed"] == {"release": 3, "mask": 0, "hold": 0, "block": 0}
    assert cells(page, "category-table") == {"toxicity": {"stricter": 0, "looser": 2}}
    totals = [count(page, f"total-{n}") for n in ("outputs", "changed", "skipped")]
    assert totals == [5, 2, 1]
    assert (count(page, "rejected-released"), count(page, "approved-withheld")) == (0, 0)
    assert "Policy default" in page and LOOSER.split("\n")[0].replace('"', "&#34;") in page  # form kept


def test_an_uploaded_stricter_policy_for_one_tenant(web: WebHarness) -> None:
    files = {"policy_file": ("stricter.toml", STRICTER.encode(), "application/toml")}
    status, page = post(web, {"since": "2000-01-01T00:00", "tenant": "acme", "policy": ""}, files=files)
    assert status == 200, page
    # hold 0.5 / block 0.9 on acme: 0.1 release; 0.85 hold; 0.95 hold -> block; 0.82 hold
    assert cells(page, "matrix-table")["hold"] == {"release": 0, "mask": 0, "hold": 2, "block": 1}
    # the approved 0.85 is still held: a hold counts as withheld (a reviewer's work again)
    assert count(page, "total-outputs") == 4 and count(page, "approved-withheld") == 1
    assert cells(page, "verdict-table")["rejected"]["block"] == 1
    assert cells(page, "category-table") == {"toxicity": {"stricter": 1, "looser": 0}}
    # The default preset thresholds categories these outputs never had a score for: shown as untestable.
    assert 'data-category="threat">threat: 4<' in page


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"policy": "thresholds = ["}, "policy: not valid TOML"),
        (
            {"policy": "[thresholds.toxicity]\nhold = 2\n"},
            "moderation.policies.proposal.thresholds.toxicity.hold",
        ),
        ({"policy": 'extends = "nope"'}, "extends: unknown policy &#39;nope&#39;"),
        ({"policy": "   "}, "policy: paste a policy table or choose a file"),
        ({"policy": "x" * 70_000}, "policy: must be at most 65536 characters"),
        ({"policy": LOOSER, "since": ""}, "since: is required"),
        ({"policy": LOOSER, "since": "yesterday"}, "since: must be a date and time"),
        ({"policy": LOOSER, "until": "1999-01-01T00:00"}, "until: must be after since"),
        ({"policy": LOOSER, "name": "n" * 129}, "name: must be at most 128 characters"),
        ({"policy": LOOSER, "tenant": "t" * 129}, "tenant: must be at most 128 characters"),
    ],
)
def test_bad_input_is_a_400_that_keeps_the_form(
    web: WebHarness, fields: dict[str, str], message: str
) -> None:
    status, page = post(web, {"since": "2000-01-01T00:00", **fields})
    assert status == 400 and message in page, page
    assert 'id="backtest-error"' in page and 'id="backtest-result"' not in page
    if fields.get("policy", "").startswith("[thresholds"):
        assert "hold = 2" in page  # what was typed is still in the textarea


def test_a_non_utf8_upload_is_a_400(web: WebHarness) -> None:
    files = {"policy_file": ("p.toml", b"\xff\xfe", "application/toml")}
    status, page = post(web, {"since": "2000-01-01T00:00", "policy": ""}, files=files)
    assert status == 400 and "policy_file: must be a UTF-8 text (TOML) file" in page


def test_pasted_text_is_escaped_when_shown_again(web: WebHarness) -> None:
    evil = "</textarea><script>alert(1)</script> = ["
    status, page = post(web, {"since": "2000-01-01T00:00", "policy": evil})
    assert status == 400 and "<script>alert(1)" not in page
    assert evil in unescape(page)


def test_admins_only_and_csrf(web: WebHarness) -> None:
    admin = web.client("ada")
    form = admin.get(PAGE)
    assert (
        form.status_code == 200
        and 'id="backtest-form"' in form.text
        and 'id="backtest-result"' not in form.text
    )
    assert 'href="/admin/policy-backtest"' in admin.get("/queue").text
    no_token = admin.post(PAGE, data={"since": "2000-01-01T00:00", "policy": LOOSER})
    assert no_token.status_code == 403 and "form has expired" in no_token.text
    rita = web.client("rita")
    assert rita.get(PAGE).status_code == 403
    token = page_csrf(rita, "/queue")
    refused = rita.post(PAGE, data={"csrf_token": token, "since": "2000-01-01T00:00", "policy": LOOSER})
    assert refused.status_code == 403 and "for admins" in refused.text
    assert 'href="/admin/policy-backtest"' not in rita.get("/queue").text
    anonymous = web.client().get(PAGE)
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/login")
