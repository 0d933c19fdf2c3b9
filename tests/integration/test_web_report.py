"""The policy report page (admins only): its numbers match a database with known reviewer verdicts, its
plot is a well-formed SVG on its own URL (same filters, same CSP), and bad filters are a 400 with a reason.

The verdicts are made the way the gateway makes them: outputs recorded with ``record_output``, queued with
``create_review_item``, claimed and decided with ``claim_next`` / ``decide`` (as
tests/integration/test_policy_report.py does for the CLI)."""

from __future__ import annotations

from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any
from xml.etree import ElementTree

import pytest
from sqlalchemy.orm import Session

from gateway.review.queue import claim_next, create_review_item, decide
from gateway.storage.models import GenerationOutput, GenerationRequest, Reviewer
from gateway.storage.records import record_request
from gateway.web.security import CONTENT_SECURITY_POLICY
from moderation.policy import DEFAULT
from tests.browser.support import WebHarness
from tests.support.held import record_one

# (toxicity score, verdict) of outputs the `default` policy held on toxicity (hold >= 0.80)
HELD = [(0.82, "approve"), (0.85, "approve"), (0.90, "edit"), (0.95, "reject")]
EVIL_POLICY = "<i>evil</i>"  # policy names are data: escaped in the table and in the SVG
STRICT_SHADOW = {"policy_name": "strict", "policy_version": "s1", "reasons": []}


def _output(session: Session, request: GenerationRequest, index: int, **fields: Any) -> GenerationOutput:
    return record_one(
        session, request=request, prompt_index=index, text=f"text {index}", policy_version="v1", **fields
    )


def build_verdicts(web: WebHarness) -> None:
    """acme: four held outputs decided approve, approve, edit, reject (strict in shadow would block them)
    and one released output nobody reviewed (strict would hold it); other: one rejected hold under a
    policy this gateway does not run."""
    with web.sessions() as s, s.begin():
        acme = record_request(session=s, request_id="r-acme", tenant="acme", model_id="m", prompt_count=6)
        for i, (score, _) in enumerate(HELD):
            out = _output(
                s,
                acme,
                i,
                action="hold",
                policy_name="default",
                scores={"toxicity": score},
                reasons=[{"category": "toxicity", "score": score, "threshold": 0.8, "action": "hold"}],
                shadow=[{**STRICT_SHADOW, "action": "block"}],
            )
            create_review_item(session=s, output=out)
        _output(
            s,
            acme,
            5,
            action="release",
            policy_name="default",
            scores={"toxicity": 0.1},
            shadow=[{**STRICT_SHADOW, "action": "hold"}],
        )
        other = record_request(session=s, request_id="r-other", tenant="other", model_id="m", prompt_count=1)
        out = _output(
            s,
            other,
            0,
            action="hold",
            policy_name=EVIL_POLICY,
            scores={"insult": 0.7},
            reasons=[{"category": "insult", "score": 0.7, "threshold": 0.6, "action": "hold"}],
        )
        create_review_item(session=s, output=out)
    with web.sessions() as s, s.begin():
        rita = s.query(Reviewer).filter_by(username="rita").one()
        verdict_for = {**dict(HELD), 0.7: "reject"}
        for _ in range(len(HELD) + 1):  # claims come highest priority first: decide by each item's score
            item = claim_next(session=s, reviewer=rita)
            assert item is not None
            score = next(iter(item.output.scores.values()))
            verdict = verdict_for[score]
            decide(
                session=s,
                item_id=item.id,
                reviewer=rita,
                expected_version=item.version,
                decision=verdict,
                edited_text="fixed" if verdict == "edit" else None,
                reason="no" if verdict == "reject" else None,
            )


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebHarness]:
    harness = WebHarness(tmp_path_factory.mktemp("report"), policies={"default": DEFAULT})
    build_verdicts(harness)
    yield harness
    harness.close()


class Cells(HTMLParser):
    """Table rows keyed by their data-* attributes, each a dict of data-col -> cell text."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[tuple[str, ...], dict[str, str]] = {}
        self._row: dict[str, str] | None = None
        self._col: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "tr" and "data-policy" in a:
            key = (str(a["data-policy"]), str(a.get("data-category") or a.get("data-shadow")))
            self._row = self.rows.setdefault(key, {})
        elif tag == "td" and self._row is not None and a.get("data-col"):
            self._col = str(a["data-col"])
            self._row[self._col] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self._col = None
        elif tag == "tr":
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._row is not None and self._col is not None:
            self._row[self._col] += data

    @classmethod
    def of(cls, html: str) -> dict[tuple[str, ...], dict[str, str]]:
        parser = cls()
        parser.feed(html)
        return {k: {c: " ".join(v.split()) for c, v in row.items()} for k, row in parser.rows.items()}


def test_the_table_matches_the_verdicts(web: WebHarness) -> None:
    page = web.client("ada").get("/admin/policy-report")
    assert page.status_code == 200, page.text
    assert 'id="total-outputs">6<' in page.text and 'id="total-reviewed">5<' in page.text
    rows = Cells.of(page.text)
    assert rows[("default", "toxicity")] == {
        "policy": "default",
        "category": "toxicity",
        "held": "4",
        "approved": "50.0% (2)",  # false holds: approved unchanged
        "edited": "25.0% (1)",
        "rejected": "25.0% (1)",
        "scored": "4",
        "hold": "0.80",  # the `default` preset this gateway runs
        "block": "-",
        # t=0.95 releases 0.82, 0.85, 0.90 (none rejected: 0 <= 1%); t=1.0 releases a rejection (25%).
        "suggested": "0.95",
        "released": "3 / 0",
        "qa": "0 / 0",  # no QA sample in this database
    }
    evil = rows[(EVIL_POLICY, "insult")]
    assert (evil["held"], evil["rejected"], evil["hold"], evil["suggested"]) == (
        "1",
        "100.0% (1)",
        "-",
        "0.70",
    )
    assert "&lt;i&gt;evil&lt;/i&gt;" in page.text and EVIL_POLICY not in page.text
    # The shadow policy: all five acme outputs; would block the four reviewed ones, hold the released one.
    strict = rows[("default", "strict")]
    assert strict["outputs"] == "5"
    assert strict["release"].startswith("0 ") and strict["hold"].startswith("1 ")
    assert strict["block"] == "4 approved 2 edited 1 rejected 1 unreviewed 0"
    assert "unreviewed 1" in strict["hold"]
    assert "only reviewed outputs count" in page.text and 'shadow_policies = ["strict"]' in page.text


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("tenant=acme", {"outputs": 5, "suggested": "0.95", "released": "3 / 0", "evil": False}),
        # 30%: t=1.0 releases all four with one rejection (25%), within target.
        ("target_rate=0.3", {"outputs": 6, "suggested": "1.00", "released": "4 / 1", "evil": True}),
        # Edits count as bad too: t=0.95 would release the edited 0.90; t=0.90 releases two approvals.
        ("edited=1", {"outputs": 6, "suggested": "0.90", "released": "2 / 0", "evil": True}),
        ("tenant=acme&since=2000-01-01T00:00&until=2999-01-01T00:00", {"outputs": 5, "evil": False}),
        ("since=2999-01-01T00:00", {"outputs": 0, "evil": False}),
    ],
)
def test_filters_change_the_numbers(web: WebHarness, query: str, expected: dict[str, object]) -> None:
    page = web.client("ada").get(f"/admin/policy-report?{query}")
    assert page.status_code == 200, page.text
    assert f'id="total-outputs">{expected["outputs"]}<' in page.text
    rows = Cells.of(page.text)
    assert ((EVIL_POLICY, "insult") in rows) is expected["evil"]
    if expected["outputs"] == 0:
        assert "No reviewed outputs in this window." in page.text and not rows
    if "suggested" in expected:
        row = rows[("default", "toxicity")]
        assert (row["suggested"], row["released"]) == (expected["suggested"], expected["released"])
    # The plot is asked for with the same filters.
    assert 'src="/admin/policy-report.svg?' in page.text
    if "tenant=acme" in query:
        assert "tenant=acme" in page.text.split('id="report-plot"')[0].rsplit("<img", 1)[1]


def test_the_plot_is_a_well_formed_svg_under_the_same_csp(web: WebHarness) -> None:
    client = web.client("ada")
    reply = client.get("/admin/policy-report.svg?target_rate=0.01")
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "image/svg+xml"
    assert reply.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert reply.headers["x-content-type-options"] == "nosniff"
    root = ElementTree.fromstring(reply.text)  # the evil policy name is escaped, or this fails
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    texts = " ".join(t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text"))
    assert "default / toxicity: 4 reviewed" in texts and "<i>evil</i> / insult" in texts
    assert "suggested hold 0.95" in texts
    assert not [e for e in root.iter() if e.tag.endswith(("script", "foreignObject"))]
    only_acme = ElementTree.fromstring(client.get("/admin/policy-report.svg?tenant=acme").text)
    assert "evil" not in ElementTree.tostring(only_acme, encoding="unicode")
    # The page shows it as an image, never inlined.
    page = client.get("/admin/policy-report").text
    assert '<img src="/admin/policy-report.svg?target_rate=0.01" id="report-plot"' in page
    assert "<svg" not in page


def test_the_report_is_for_admins_only(web: WebHarness) -> None:
    rita = web.client("rita")
    for path in ("/admin/policy-report", "/admin/policy-report.svg"):
        reply = rita.get(path)
        assert reply.status_code == 403 and "for admins" in reply.text, path
        anonymous = web.client().get(path)
        assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/login"), path
    assert 'href="/admin/policy-report"' not in rita.get("/queue").text
    assert 'href="/admin/policy-report"' in web.client("ada").get("/queue").text


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("since=yesterday", "since: must be a date and time"),
        ("since=2026-02-01T00:00&until=2026-01-01T00:00", "until: must be after since"),
        ("target_rate=1.5", "target_rate: must be a number between 0 and 1"),
        ("target_rate=0", "target_rate: must be a number between 0 and 1"),
        ("target_rate=nan", "target_rate: must be a number between 0 and 1"),
        ("target_rate=abc", "target_rate: must be a number between 0 and 1"),
        ("edited=maybe", "edited: must be 1 or left out"),
        ("tenant=" + "x" * 129, "tenant: must be at most 128 characters"),
    ],
)
def test_bad_filters_are_400s_with_a_reason(web: WebHarness, query: str, message: str) -> None:
    client = web.client("ada")
    for path in ("/admin/policy-report", "/admin/policy-report.svg"):
        reply = client.get(f"{path}?{query}")
        assert reply.status_code == 400 and message in reply.text, (path, reply.text)


def test_filter_values_are_escaped(web: WebHarness) -> None:
    tenant = '"><script>alert(1)</script>'
    page = web.client("ada").get("/admin/policy-report", params={"tenant": tenant})
    assert page.status_code == 200
    assert "<script>alert" not in page.text and 'id="total-outputs">0<' in page.text
    assert 'value="&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"' in page.text
