"""Reviewer web: the admin audit page (filters, keyset pages, CSV export, chain verification)."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from gateway.audit import append
from gateway.audit.keeper import AnchorKeeper, anchor_once
from gateway.web.views.audit import PAGE_SIZE
from tests.browser.support import WebHarness
from tests.support.audit_tamper import tampering


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebHarness]:
    harness = WebHarness(tmp_path_factory.mktemp("web-audit"))
    with harness.sessions() as s, s.begin():
        for i in range(PAGE_SIZE + 5):
            append(
                session=s,
                event_type="key.created",
                actor="cli:ops" if i % 2 else '=HYPERLINK("http://evil")',
                tenant="acme" if i % 3 else "globex",
                action="create",
                payload={"n": i, "note": "<script>alert(1)</script>"},
            )
    harness.hold(tenant="acme")
    yield harness
    harness.close()


def ids(html: str) -> list[int]:
    return [int(n) for n in re.findall(r'<td data-label="#" class="num">(\d+)</td>', html)]


def test_pages_follow_the_keyset(web: WebHarness) -> None:
    admin = web.client("ada")
    first = admin.get("/audit")
    assert first.status_code == 200
    page = ids(first.text)
    assert len(page) == PAGE_SIZE and page == sorted(page) and page[0] == 1
    link = re.search(r'href="/audit(\?[^"]*after_id=\d+[^"]*)" id="next-page"', first.text)
    assert link, "a full page links to the next one"
    second = admin.get("/audit" + link.group(1).replace("&amp;", "&"))
    assert ids(second.text)[0] == page[-1] + 1 and "First page" in second.text


def test_filters_narrow_the_events(web: WebHarness) -> None:
    admin = web.client("ada")
    tenant = admin.get("/audit?tenant=globex&event_type=key.created")
    assert tenant.status_code == 200
    assert tenant.text.count('<td data-label="Tenant">globex</td>') == len(ids(tenant.text)) > 0
    family = admin.get("/audit?event_type=review.*")
    assert "review.held" in family.text and "key.created" not in family.text.split("<tbody>")[1]
    actor = admin.get("/audit?actor=cli:ops")
    assert len(ids(actor.text)) == (PAGE_SIZE + 5) // 2
    assert "&lt;script&gt;" in actor.text and "<script>alert" not in actor.text
    nothing = admin.get("/audit?since=2000-01-01T00:00&until=2000-01-02T00:00")
    assert ids(nothing.text) == [] and "No events match" in nothing.text


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("since=yesterday", "since: must be a date and time"),
        ("event_type=drop.table", "event_type: is not a known event type"),
        ("after_id=-1", "after_id: must be a non-negative whole number"),
        ("since=2026-01-02T00:00&until=2026-01-01T00:00", "until: must be after since"),
        ("tenant=" + "t" * 200, "tenant: must be at most 128 characters"),
    ],
)
def test_bad_filters_are_400s_with_a_reason(web: WebHarness, query: str, message: str) -> None:
    reply = web.client("ada").get("/audit?" + query)
    assert reply.status_code == 400 and message in reply.text and "Traceback" not in reply.text


def test_csv_export_has_every_matching_event_and_defuses_formulas(web: WebHarness) -> None:
    reply = web.client("ada").get("/audit.csv?event_type=key.created")
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/csv")
    assert "attachment" in reply.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(reply.text)))
    assert len(rows) == PAGE_SIZE + 5
    assert {r["event_type"] for r in rows} == {"key.created"}
    assert all(not r["actor"].startswith("=") for r in rows)
    assert "'=HYPERLINK" in {r["actor"][:11] for r in rows}
    assert all(len(r["hash"]) == 64 for r in rows)


def test_verify_reports_an_intact_then_a_broken_chain(tmp_path: Path) -> None:
    web = WebHarness(tmp_path)
    try:
        admin = web.client("ada")
        ok = admin.get("/api/audit/verify").json()
        assert ok["ok"] is True and ok["checked"] >= 3 and ok["first_bad_id"] is None
        assert ok["anchoring"] is False and ok["anchor_id"] is None
        with tampering(web.engine) as conn:
            conn.execute(text("UPDATE audit_events SET actor = 'someone-else' WHERE id = 2"))
        broken = admin.get("/api/audit/verify").json()
        assert broken["ok"] is False and broken["first_bad_id"] == 2 and "edited" in broken["problem"]
        assert 'id="verify"' in admin.get("/audit").text
    finally:
        web.close()


def test_verify_uses_the_servers_last_anchor_and_catches_truncation(tmp_path: Path) -> None:
    """Without the anchor, deleting the newest events leaves a chain that verifies; with it, not."""
    keeper = AnchorKeeper(b"an anchor key of thirty-two chars or more", tmp_path / "anchors.log")
    web = WebHarness(tmp_path, anchors=keeper)
    try:
        admin = web.client("ada")
        unanchored = admin.get("/api/audit/verify").json()
        assert unanchored["ok"] is True and unanchored["anchoring"] is True
        assert unanchored["anchor_id"] is None
        anchor = anchor_once(keeper, web.sessions)
        assert anchor is not None
        ok = admin.get("/api/audit/verify").json()
        assert ok["ok"] is True and ok["anchor_id"] == anchor.head_id == ok["head_id"]
        with tampering(web.engine) as conn:
            conn.execute(text("DELETE FROM audit_events WHERE id = :id"), {"id": anchor.head_id})
        truncated = admin.get("/api/audit/verify").json()
        assert truncated["ok"] is False and truncated["first_bad_id"] == anchor.head_id
        assert "log truncated" in truncated["problem"]
    finally:
        web.close()
