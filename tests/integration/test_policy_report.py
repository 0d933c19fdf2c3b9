"""`modgate policy report` over a database with known verdicts: counts, rates and the suggested threshold
match hand-computed expectations; shadow decisions are counted but never acted on."""

from __future__ import annotations

import json
from pathlib import Path
from xml.etree import ElementTree

from click.testing import CliRunner
from sqlalchemy.orm import Session

from gateway.cli import cli
from gateway.review.queue import claim_next, create_review_item, decide
from gateway.review.reviewers import create_reviewer
from gateway.storage import migrate
from gateway.storage.engine import make_engine
from gateway.storage.records import record_request
from tests.support.held import record_one

# (toxicity score, reviewer verdict) of outputs the `default` policy held on toxicity (hold >= 0.8)
HELD = [(0.82, "approve"), (0.85, "approve"), (0.90, "edit"), (0.95, "reject")]


def build_db(url: str) -> None:
    migrate.upgrade(url)
    engine = make_engine(url)
    with Session(engine) as s, s.begin():
        reviewer = create_reviewer(session=s, username="rita", password="correct horse battery staple")
        request = record_request(session=s, request_id="r1", tenant="acme", model_id="m", prompt_count=1)
        for i, (score, _) in enumerate(HELD):
            out = record_one(
                s,
                request=request,
                sequence_index=i,
                text=f"t{i}",
                action="hold",
                policy_version="v1",
                scores={"toxicity": score},
                reasons=[{"category": "toxicity", "score": score, "threshold": 0.8, "action": "hold"}],
                shadow=[{"policy_name": "strict", "policy_version": "s1", "action": "block", "reasons": []}],
            )
            create_review_item(session=s, output=out)
        # A released output nobody reviewed: only the shadow summary sees it.
        record_one(
            s,
            request=request,
            prompt_index=1,
            text="ok",
            policy_version="v1",
            scores={"toxicity": 0.1},
            shadow=[{"policy_name": "strict", "policy_version": "s1", "action": "hold", "reasons": []}],
        )
        verdict_for = dict(HELD)
        for _ in HELD:  # claims come highest priority first: decide by each item's own score
            item = claim_next(session=s, reviewer=reviewer)
            assert item is not None
            verdict = verdict_for[item.output.scores["toxicity"]]
            decide(
                session=s,
                item_id=item.id,
                reviewer=reviewer,
                expected_version=item.version,
                decision=verdict,
                edited_text="fixed" if verdict == "edit" else None,
            )
    engine.dispose()


def test_report_counts_rates_and_suggestion(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    build_db(url)
    svg = tmp_path / "report.svg"
    result = CliRunner().invoke(
        cli,
        ["policy", "--database-url", url, "report", "--json", "--svg", str(svg)],
        env={"MODGATE_CONFIG": ""},
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["outputs"] == 5 and report["reviewed"] == 4
    (row,) = [c for c in report["categories"] if c["policy"] == "default" and c["category"] == "toxicity"]
    assert (row["held"], row["held_approved"], row["held_edited"], row["held_rejected"]) == (4, 2, 1, 1)
    assert row["current_hold"] == 0.8  # the `default` preset's toxicity hold threshold
    # Released below t / rejected among them: t=0.95 -> [0.82, 0.85, 0.90], none rejected -> 0 <= 1%;
    # t=1.0 -> all four, one rejected -> 25% > 1%. The highest t within target is 0.95.
    assert row["suggested_hold"] == 0.95
    assert (row["released_at_suggestion"], row["rejected_at_suggestion"]) == (3, 0)
    assert row["approved"]["count"] == 2 and row["rejected"]["count"] == 1
    (shadow,) = report["shadows"]
    assert shadow["shadow"] == "strict" and shadow["outputs"] == 5
    assert shadow["would_block"]["approved"] == 2 and shadow["would_hold"]["unreviewed"] == 1
    ElementTree.fromstring(svg.read_text())  # a well-formed SVG was written

    table = CliRunner().invoke(cli, ["policy", "--database-url", url, "report"], env={"MODGATE_CONFIG": ""})
    assert table.exit_code == 0 and "toxicity" in table.output and "0.95" in table.output


def test_report_refuses_bad_options(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    migrate.upgrade(url)
    bad = CliRunner().invoke(cli, ["policy", "--database-url", url, "report", "--since", "yesterday"])
    assert bad.exit_code == 2 and "not an ISO date" in bad.output
    rate = CliRunner().invoke(cli, ["policy", "--database-url", url, "report", "--target-rate", "1.5"])
    assert rate.exit_code == 2
    empty = CliRunner().invoke(
        cli, ["policy", "--database-url", url, "report", "--json"], env={"MODGATE_CONFIG": ""}
    )
    assert empty.exit_code == 0 and json.loads(empty.output)["outputs"] == 0
