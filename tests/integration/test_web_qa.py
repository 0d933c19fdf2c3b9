"""The QA queue in the reviewer web app: the released text (masked as the client got it, never the
withheld original), labels by form post (exactly once, refusals with a reason), and the miss rate on
the policy report page, checked against hand-computed Wilson intervals."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from gateway.review import qa
from gateway.storage.models import AuditEvent, QaSample, QaState
from tests.browser.support import XSS_OUTPUT, XSS_PROMPT, WebHarness, csrf_of
from tests.integration.test_web_report import Cells
from tests.support.held import record_one

ORIGINAL = "you absolute muppet, said the parrot"
MASKED = "you absolute ******, said the parrot"
QA_SETTINGS = {"review": {"qa": {"default": {"sample_rate": 0.5}, "strict": {"sample_rate": 0.1}}}}
Z = 1.959963984540054


def wilson_by_hand(k: int, n: int) -> tuple[float, float]:
    root = Z * math.sqrt(k * (n - k) / n + Z * Z / 4)
    return (k + Z * Z / 2 - root) / (n + Z * Z), (k + Z * Z / 2 + root) / (n + Z * Z)


def add_sample(
    web: WebHarness, *, action: str = "release", text: str = "a kind reply", **scores: float
) -> str:
    with web.sessions() as s, s.begin():
        out = record_one(
            s,
            prompt=XSS_PROMPT,
            text=ORIGINAL if action == "mask" else text,
            action=action,
            masked_text=MASKED if action == "mask" else None,
            policy_version="v1",
            scores=scores or {"toxicity": 0.1, "insult": 0.05},
        )
        sample = QaSample(output_id=out.id, policy_name="default", sample_rate=0.5)
        s.add(sample)
        s.flush()
        return sample.id


@pytest.fixture
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebHarness]:
    harness = WebHarness(tmp_path_factory.mktemp("qa"), settings=QA_SETTINGS)
    yield harness
    harness.close()


def label(client: object, sample_id: str, verdict: str, *categories: str) -> object:
    page = client.get(f"/qa/{sample_id}")  # type: ignore[attr-defined]
    data = {"csrf_token": csrf_of(page.text), "label": verdict, "categories": list(categories)}
    return client.post(f"/qa/{sample_id}/label", data=data)  # type: ignore[attr-defined]


def test_the_sample_page_shows_what_the_client_got(web: WebHarness) -> None:
    masked = add_sample(web, action="mask", toxicity=0.4, insult=0.45)
    rita = web.client("rita")  # a reviewer, not an admin
    queue = rita.get("/qa")
    assert queue.status_code == 200 and f'href="/qa/{masked}"' in queue.text
    assert 'data-state="pending">1<' in queue.text and 'id="nav-qa"' in queue.text
    page = rita.get(f"/qa/{masked}")
    assert page.status_code == 200
    assert MASKED in page.text and "muppet" not in page.text, "the withheld original never shows"
    assert XSS_PROMPT not in page.text and "&lt;script&gt;" in page.text
    assert [m for m in re.findall(r'name="categories" value="([^"]+)"', page.text)] == [
        "insult",
        "toxicity",
        "other",
    ]
    plain = add_sample(web, text=XSS_OUTPUT)
    assert XSS_OUTPUT not in rita.get(f"/qa/{plain}").text
    assert rita.get("/qa/next").headers["location"] == f"/qa/{masked}"  # the oldest first


def test_labels_are_final_and_refusals_say_why(web: WebHarness) -> None:
    sample = add_sample(web)
    rita, ravi = web.client("rita"), web.client("ravi")
    bad = label(rita, sample, "harmful")
    assert bad.status_code == 400 and "needs at least one category" in bad.text  # type: ignore[attr-defined]
    unknown = label(rita, sample, "harmful", "threat")
    assert unknown.status_code == 400 and "unknown for this output" in unknown.text  # type: ignore[attr-defined]
    no_csrf = rita.post(f"/qa/{sample}/label", data={"label": "fine"})
    assert no_csrf.status_code == 403
    page = ravi.get(f"/qa/{sample}")  # ravi opens it too, then rita labels first
    done = label(rita, sample, "harmful", "toxicity", "other")
    assert done.status_code == 303 and done.headers["location"] == "/qa/next"  # type: ignore[attr-defined]
    late = ravi.post(f"/qa/{sample}/label", data={"csrf_token": csrf_of(page.text), "label": "fine"})
    assert late.status_code == 409 and "already labelled harmful" in late.text
    with web.sessions() as s:
        row = s.get_one(QaSample, sample)
        assert (row.state, row.categories) == (QaState.HARMFUL, ["toxicity", "other"])
        events = s.scalars(select(AuditEvent).where(AuditEvent.event_type == "qa.labelled")).all()
        assert [e.actor for e in events] == ["reviewer:rita"]
    shown = rita.get(f"/qa/{sample}").text
    assert 'id="qa-labelled"' in shown and "toxicity, other" in shown and 'id="label-form"' not in shown
    assert rita.get("/qa/not-a-sample").status_code == 404
    assert web.client().get("/qa").status_code in (302, 303)  # not logged in


def test_the_report_shows_the_miss_rate_with_its_interval_and_n(web: WebHarness) -> None:
    # 3 harmful (2 in toxicity) of 12 labelled releases of `default`; `strict` sampled, nothing labelled.
    ids = [add_sample(web, toxicity=0.05 * i, insult=0.01) for i in range(12)]
    pending = add_sample(web)
    assert pending
    rita = web.client("rita")
    for i, sample in enumerate(ids):
        categories = {0: ("toxicity",), 1: ("toxicity", "insult"), 2: ("other",)}.get(i, ())
        reply = label(rita, sample, "harmful" if categories else "fine", *categories)
        assert reply.status_code == 303, reply.text  # type: ignore[attr-defined]
    assert web.client("rita").get("/admin/policy-report").status_code == 403  # admins only
    page = web.client("ada").get("/admin/policy-report")
    assert page.status_code == 200, page.text
    assert 'id="total-qa">12<' in page.text
    rows = Cells.of(page.text)

    def pct(x: float) -> str:
        return f"{100 * x:.1f}%"

    low, high = wilson_by_hand(3, 12)
    assert rows[("default", "any")] == {
        "harmful": "3",
        "n": "12",
        "estimate": pct(3 / 12),
        "interval": f"{pct(low)} to {pct(high)}",
        "rates": "50.0%",
    }
    low, high = wilson_by_hand(2, 12)
    assert rows[("default", "toxicity")]["interval"] == f"{pct(low)} to {pct(high)}"
    assert rows[("default", "insult")]["harmful"] == "1" and rows[("default", "other")]["harmful"] == "1"
    assert rows[("strict", "any")]["n"] == "0"
    assert rows[("strict", "any")]["estimate"] == "no labelled samples (n = 0): no estimate"
    # The suggestion row of default/toxicity counts the QA labels it rests on.
    assert rows[("default", "toxicity")]["qa"] == "2 / 12"


def test_qa_settings_are_checked() -> None:
    with pytest.raises(qa.QaConfigError, match=r"review.qa.default.sample_rate: .* got 0"):
        qa.parse_qa({"default": {"sample_rate": 0}})
    with pytest.raises(qa.QaConfigError, match="one key, sample_rate"):
        qa.parse_qa({"default": {"rate": 0.1}})
    with pytest.raises(qa.QaConfigError, match="sample_rate"):
        qa.parse_qa({"default": {"sample_rate": True}})
    assert qa.parse_qa({"default": {"sample_rate": 1}}) == {"default": 1.0}
