"""Reviewer web: the queue page, the review page, decisions, conflicts (409) and escaping."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
from sqlalchemy import event
from starlette.testclient import TestClient

from gateway.review.queue import get_result
from gateway.review.results import ResultState
from gateway.web import present
from tests.browser.support import XSS_OUTPUT, XSS_PROMPT, WebHarness, csrf_of, page_csrf

TEMPLATES = Path(__file__).resolve().parents[2] / "gateway" / "web" / "templates"


@pytest.fixture
def web(tmp_path: Path) -> Iterator[WebHarness]:
    harness = WebHarness(tmp_path)
    yield harness
    harness.close()


def claim(client: TestClient) -> tuple[str, str]:
    """Review next -> (item id, the review page's HTML)."""
    reply = client.post("/queue/claim", data={"csrf_token": page_csrf(client)})
    assert reply.status_code == 303 and reply.headers["location"].startswith("/items/"), reply.text
    page = client.get(reply.headers["location"])
    assert page.status_code == 200
    return reply.headers["location"].rsplit("/", 1)[1], page.text


def version_of(html: str) -> str:
    found = re.search(r'name="version" value="(\d+)"', html)
    assert found
    return found.group(1)


def decide(client: TestClient, item_id: str, html: str, **form: str) -> object:
    data = {"csrf_token": csrf_of(html), "version": version_of(html), **form}
    return client.post(f"/items/{item_id}/decide", data=data)


def result(web: WebHarness, ticket: str) -> tuple[ResultState, str | None]:
    with web.sessions() as s:
        view = get_result(session=s, ticket=ticket)
        return view.state, view.text


def test_queue_page_lists_items_with_counts_and_sorts(web: WebHarness) -> None:
    web.hold(tenant="zeta", scores={"toxicity": 0.2}, priority=0.2)
    web.hold(tenant="alpha", scores={"toxicity": 0.9, "insult": 0.7}, priority=0.9)
    client = web.client("rita")
    page = client.get("/queue")
    assert page.status_code == 200
    assert re.search(r'data-state="pending">2<', page.text)
    assert page.text.index("alpha") < page.text.index("zeta"), "most urgent first"
    assert "toxicity 0.62 ≥ 0.50" in page.text and "policy: review all" in page.text
    by_tenant = client.get("/queue?sort=tenant&dir=asc").text
    assert by_tenant.index("alpha") < by_tenant.index("zeta")
    by_age = client.get("/queue?sort=age&dir=desc").text
    assert by_age.index("zeta") < by_age.index("alpha"), "oldest first"
    by_score = client.get("/queue?sort=score&dir=asc").text
    assert by_score.index("zeta") < by_score.index("alpha"), "lowest score first"


def test_queue_rows_partial_shows_new_items(web: WebHarness) -> None:
    client = web.client("rita")
    before = client.get("/queue/rows")
    assert before.status_code == 200 and "<html" not in before.text and "The queue is empty." in before.text
    web.hold(tenant="newcomer")
    after = client.get("/queue/rows")
    assert "newcomer" in after.text and 'class="item-row' in after.text
    as_json = client.get("/queue/rows", headers={"accept": "application/json"}).json()
    assert as_json["counts"]["pending"] == 1 and as_json["items"][0]["tenant"] == "newcomer"


def test_bad_queue_parameters_are_a_400_with_a_reason(web: WebHarness) -> None:
    client = web.client("rita")
    reply = client.get("/queue?sort=evil")
    assert reply.status_code == 400 and "sort: must be one of" in reply.text
    assert "Traceback" not in reply.text
    assert client.get("/queue?dir=sideways").status_code == 400


def test_review_page_shows_text_spans_bars_and_parameters(web: WebHarness) -> None:
    text = "well damn, that is rude"
    spans = [{"start": 5, "end": 9, "category": "profanity", "scorer": "wordlist"}]
    web.hold(text=text, spans=spans, parameters={"temperature": 0.5, "seed": 7, "stop": ["\n"]})
    _, html = claim(web.client("rita"))
    mark = '<mark class="flag" title="profanity" data-category="profanity">damn</mark>'
    assert f'id="output-text">well {mark}, that is rude</div>' in html
    assert "<dt>temperature</dt><dd><code>0.5</code></dd>" in html and "<dt>seed</dt>" in html
    assert 'class="fill w-62"' in html and 'class="threshold at-50"' in html, "toxicity 0.62 vs 0.50"
    assert 'class="fill w-31"' in html, "insult has no reason: its bar has no threshold"
    assert "You hold the claim" in html and 'id="approve-form"' in html


def test_model_output_and_prompt_are_escaped(web: WebHarness) -> None:
    web.hold(prompt=XSS_PROMPT, text=XSS_OUTPUT, spans=[{"start": 0, "end": 11, "category": "x"}])
    client = web.client("rita")
    _, html = claim(client)
    for raw in ("<script>alert", "<script>window", "<img src=x", '<b id="injected">', "</textarea><script"):
        assert raw not in html, raw
    assert "&lt;script&gt;alert(&#34;xss&#34;)&lt;/script&gt;" in html
    assert '<mark class="flag" title="x" data-category="x">&lt;/textarea&gt;</mark>' in html
    assert "&lt;img src=x onerror=&#34;document.body.dataset.pwned=1&#34;&gt;" in html
    assert re.findall(r"<script[^>]*>", html) == [
        '<script src="/static/app.js" defer>',
        '<script src="/static/review.js" defer>',
    ], "only the app's own script files, never inline script"
    tags = Tags()
    tags.feed(html)
    assert "img" not in {t for t, _ in tags.seen} and ("id", "injected") not in {a for _, a in tags.seen}
    bad = {(t, a) for t, (a, _) in tags.seen if a == "style" or a.startswith("on")}
    assert not bad, f"inline styles or event handlers (the CSP would block them): {bad}"


class Tags(HTMLParser):
    """Every (tag, attribute) the browser would build from a page."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, tuple[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.seen.extend((tag, a) for a in attrs)
        if not attrs:
            self.seen.append((tag, ("", None)))


def test_templates_never_mark_values_safe() -> None:
    for template in TEMPLATES.glob("*.html"):
        source = template.read_text()
        assert "|safe" not in source.replace(" ", "") and "Markup" not in source, template.name
        assert "autoescape false" not in source, template.name


def test_approve_edit_reject_release_exactly_what_was_decided(web: WebHarness) -> None:
    tickets = [web.hold(text=f"text number {i}", priority=1 - i / 10)[1] for i in range(3)]
    client = web.client("rita")
    item, html = claim(client)
    reply = decide(client, item, html, decision="approve")
    assert reply.status_code == 303 and reply.headers["location"] == "/queue"
    assert f"Approved {tickets[0]}." in client.get("/queue").text
    item, html = claim(client)
    assert decide(client, item, html, decision="edit", edited_text="line one\r\nline two").status_code == 303
    item, html = claim(client)
    assert decide(client, item, html, decision="reject", reason="not salvageable").status_code == 303
    assert result(web, tickets[0]) == (ResultState.APPROVED, "text number 0")
    assert result(web, tickets[1]) == (ResultState.EDITED, "line one\nline two"), "CRLF from the browser"
    assert result(web, tickets[2]) == (ResultState.REJECTED, None)
    decided = client.get(f"/items/{item}").text
    assert "Rejected" in decided and "not salvageable" in decided and 'id="approve-form"' not in decided


def test_bad_decisions_are_400s_with_a_reason(web: WebHarness) -> None:
    web.hold()
    client = web.client("rita")
    item, html = claim(client)
    cases = [
        ({"decision": "reject"}, "reason: a rejection needs a reason"),
        ({"decision": "edit", "edited_text": "   "}, "an edit needs the edited text"),
        ({"decision": "nuke"}, "decision: must be approve, edit or reject"),
        ({"decision": "approve", "version": "abc"}, "version: must be the item version"),
    ]
    for form, message in cases:
        reply = decide(client, item, html, **form)
        assert reply.status_code == 400 and message in reply.text, (form, reply.text)
    assert client.get("/items/" + "x" * 80).status_code == 404
    assert client.get("/items/no-such-item").status_code == 404


def test_a_decision_someone_else_made_first_is_a_clear_409(web: WebHarness) -> None:
    web.hold()
    rita, ravi = web.client("rita"), web.client("ravi")
    item, html = claim(rita)
    other = ravi.get(f"/items/{item}").text
    assert "Claimed by <strong>rita</strong>" in other and 'id="approve-form"' not in other
    refused = ravi.post(
        f"/items/{item}/decide",
        data={"csrf_token": csrf_of(other), "version": version_of(html), "decision": "approve"},
    )
    assert refused.status_code == 409 and "You do not hold the claim" in refused.text
    assert decide(rita, item, html, decision="approve").status_code == 303
    again = decide(rita, item, html, decision="reject", reason="changed my mind")
    assert again.status_code == 409 and "already decided" in again.text
    heartbeat = rita.post(f"/api/items/{item}/lease", headers={"x-csrf-token": csrf_of(html)})
    assert heartbeat.status_code == 409 and heartbeat.json()["error"] == "AlreadyDecided"


def test_stale_version_is_a_409(web: WebHarness) -> None:
    web.hold()
    client = web.client("rita")
    item, html = claim(client)
    stale = {"csrf_token": csrf_of(html), "version": str(int(version_of(html)) - 1), "decision": "approve"}
    reply = client.post(f"/items/{item}/decide", data=stale)
    assert reply.status_code == 409 and "changed after you opened it" in reply.text


def test_heartbeat_renews_the_lease(tmp_path: Path) -> None:
    web = WebHarness(tmp_path, lease_seconds=30)
    try:
        web.hold()
        client = web.client("rita")
        item, html = claim(client)
        assert 'data-lease-seconds="30"' in html
        reply = client.post(f"/api/items/{item}/lease", headers={"x-csrf-token": csrf_of(html)})
        assert reply.status_code == 200 and 25 <= reply.json()["seconds_left"] <= 30
    finally:
        web.close()


def test_escalated_items_are_for_admins_only(web: WebHarness) -> None:
    item_id, _ = web.hold(escalated=True, tenant="hush")
    rita, ada = web.client("rita"), web.client("ada")
    assert "hush" not in rita.get("/queue").text
    assert rita.get(f"/items/{item_id}").status_code == 403
    assert rita.post("/queue/claim", data={"csrf_token": page_csrf(rita)}).headers["location"] == "/queue"
    assert "hush" in ada.get("/queue").text
    claimed, _ = claim(ada)
    assert claimed == item_id


def test_escalate_hands_the_item_to_admins(web: WebHarness) -> None:
    web.hold(tenant="tricky")
    rita = web.client("rita")
    item, html = claim(rita)
    reply = rita.post(f"/items/{item}/escalate", data={"csrf_token": csrf_of(html), "reason": "unsure"})
    assert reply.status_code == 303
    assert "tricky" not in rita.get("/queue").text and "tricky" in web.client("ada").get("/queue").text


def test_empty_queue_claim_says_so(web: WebHarness) -> None:
    client = web.client("rita")
    reply = client.post("/queue/claim", data={"csrf_token": page_csrf(client)})
    assert reply.headers["location"] == "/queue"
    assert "Nothing to review right now." in client.get("/queue").text


def test_unexpected_errors_are_a_bare_500(web: WebHarness, monkeypatch: pytest.MonkeyPatch) -> None:
    import gateway.web.data as data

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret internals /etc/passwd")

    monkeypatch.setattr(data, "queue_view", boom)
    reply = web.client("rita").get("/queue")
    assert reply.status_code == 500 and "secret internals" not in reply.text and "Traceback" not in reply.text
    assert "content-security-policy" in reply.headers


def test_segments_split_overlaps_and_ignore_bad_spans() -> None:
    spans = [
        {"start": 0, "end": 4, "category": "a"},
        {"start": 2, "end": 6, "category": "b"},
        {"start": 50, "end": 60, "category": "c"},
        {"start": "1", "end": 3},
        "junk",
    ]
    assert [(s.text, s.categories) for s in present.segments("abcdefgh", spans)] == [
        ("ab", ("a",)),
        ("cd", ("a", "b")),
        ("ef", ("b",)),
        ("gh", ()),
    ]
    assert present.segments("", spans) == []
    assert "".join(s.text for s in present.segments("xyz", None)) == "xyz"


def test_the_queue_poll_costs_the_same_few_queries_for_many_rows(web: WebHarness) -> None:
    client = web.client("rita")
    statements: list[str] = []

    def count(*args: object) -> None:
        statements.append(str(args[2]))

    def queries_for_rows() -> int:
        statements.clear()
        event.listen(web.engine, "before_cursor_execute", count)
        try:
            assert client.get("/queue/rows").status_code == 200
        finally:
            event.remove(web.engine, "before_cursor_execute", count)
        return len(statements)

    web.hold()
    few = queries_for_rows()
    for _ in range(20):
        web.hold()
    assert queries_for_rows() == few <= 8, "no query per row"


def test_appeals_are_marked_and_their_reason_is_escaped(web: WebHarness) -> None:
    web.hold(appeal_reason="<b>please</b> look again")
    client = web.client("rita")
    assert '<span class="badge state-appeal"' in client.get("/queue").text
    _, html = claim(client)
    assert '<q id="appeal-reason">&lt;b&gt;please&lt;/b&gt; look again</q>' in html


def test_the_queue_shows_what_a_review_deadline_will_do_and_when(tmp_path: Path) -> None:
    deadlines = {"deadlines": {"strict": {"after_s": 3600, "action": "escalate"}}}
    harness = WebHarness(tmp_path, settings={"review": deadlines})
    try:
        harness.hold(policy="strict")
        harness.hold(policy="default")  # no deadline: nothing shown
        rita = harness.client("rita")
        rows = rita.get("/queue/rows", headers={"accept": "application/json"}).json()["items"]
        assert sorted(str(r["due"]) for r in rows) == ["None", "escalate in 59m"]
        assert "escalate in 59m" in rita.get("/queue").text
    finally:
        harness.close()


@pytest.mark.parametrize(
    ("form", "field"),
    [
        ({"decision": "reject", "reason": "x" * 2001}, "reason"),
        ({"decision": "edit", "edited_text": "A\x00B"}, "edited_text"),
        ({"decision": "edit", "edited_text": "y" * 20_001}, "edited_text"),
    ],
)
def test_the_web_form_keeps_the_same_bounds_as_grpc(
    web: WebHarness, form: dict[str, str], field: str
) -> None:
    """One rule in the review queue for every front door: oversized or NUL text is a 400 naming the
    field, and the item stays claimed at its version."""
    web.hold()
    client = web.client("rita")
    item_id, html = claim(client)
    reply = decide(client, item_id, html, **form)
    assert reply.status_code == 400 and field in reply.text  # type: ignore[attr-defined]
    done = decide(client, item_id, html, decision="reject", reason="x" * 2000)
    assert done.status_code == 303  # type: ignore[attr-defined]
