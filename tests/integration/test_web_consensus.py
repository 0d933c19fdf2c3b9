"""The web queue with `[review.consensus.strict] verdicts = 2`: what each viewer sees of the verdicts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.review.queue import get_result
from gateway.review.results import ResultState
from tests.browser.support import WebHarness
from tests.integration.test_web_review import claim, decide

SETTINGS = {"review": {"consensus": {"strict": {"verdicts": 2, "rule": "majority"}}}}


@pytest.fixture
def web(tmp_path: Path) -> Iterator[WebHarness]:
    harness = WebHarness(tmp_path, settings=SETTINGS)
    yield harness
    harness.close()


def test_nobody_sees_a_verdict_before_the_admin_of_an_escalation(web: WebHarness) -> None:
    item_id, ticket = web.hold()
    rita, ravi, ada = web.client("rita"), web.client("ravi"), web.client("ada")

    _, page = claim(rita)
    assert 'id="verdicts-required">2<' in page and 'id="verdicts-given">0<' in page
    reply = decide(rita, item_id, page, decision="reject", reason="rita-secret-reason")
    assert reply.status_code == 303  # type: ignore[attr-defined]
    queue = rita.get("/queue/rows", headers={"accept": "application/json"}).json()
    assert queue["items"][0]["verdicts"] == "1 of 2 verdicts"

    for viewer in (ravi, ada):  # an admin on an item that is not escalated sees no more than anyone
        item_page = viewer.get(f"/items/{item_id}").text
        assert 'id="verdicts-given">1<' in item_page
        assert "rita-secret-reason" not in item_page and 'id="verdicts"' not in item_page

    _, page = claim(ravi)
    assert "rita-secret-reason" not in page
    decide(ravi, item_id, page, decision="approve")  # 1 to 1 under majority: a tie
    with web.sessions() as s:
        assert get_result(session=s, ticket=ticket).state == ResultState.PENDING
    assert ravi.get(f"/items/{item_id}").status_code == 403, "escalated: admins only"
    admin_page = ada.get(f"/items/{item_id}").text
    assert "rita-secret-reason" in admin_page and 'data-reviewer="ravi" data-decision="approve"' in admin_page
