"""`modgate policy report` with a labelled QA sample: the miss rate (Wilson interval computed by hand
here), n = 0 for a sampled policy without labels, and the suggestion moved by the QA labels."""

from __future__ import annotations

import json
import math
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy.orm import Session

from gateway.cli import cli
from gateway.review import qa
from gateway.review.queue import claim_next, create_review_item, decide
from gateway.review.reviewers import create_reviewer
from gateway.storage import migrate
from gateway.storage.engine import make_engine
from gateway.storage.models import QaSample
from gateway.storage.records import record_request
from tests.support.held import record_one

CONFIG = "[review.qa.default]\nsample_rate = 0.5\n\n[review.qa.strict]\nsample_rate = 0.1\n"
HARMFUL_AT = (0.3, 0.4)  # toxicity scores of the two released outputs labelled harmful
FINE_AT = tuple(round(0.01 * i, 2) for i in range(1, 19))  # 18 released outputs labelled fine
Z = 1.959963984540054


def build_db(url: str) -> None:
    migrate.upgrade(url)
    engine = make_engine(url)
    with Session(engine) as s, s.begin():
        rita = create_reviewer(session=s, username="rita", password="correct horse battery staple")
        request = record_request(session=s, request_id="r1", tenant="acme", model_id="m", prompt_count=1)

        def output(index: int, action: str, score: float) -> object:
            return record_one(
                s,
                request=request,
                prompt_index=index,
                text=f"text {index}",
                action=action,
                policy_version="v1",
                scores={"toxicity": score},
                reasons=[{"category": "toxicity", "score": score, "threshold": 0.8, "action": "hold"}]
                if action == "hold"
                else [],
            )

        for i, score in enumerate((0.82, 0.95)):  # held: approved, rejected
            create_review_item(session=s, output=output(i, "hold", score))  # type: ignore[arg-type]
        for _ in range(2):
            item = claim_next(session=s, reviewer=rita)
            assert item is not None
            verdict = "reject" if item.output.scores["toxicity"] == 0.95 else "approve"
            decide(session=s, item_id=item.id, reviewer=rita, expected_version=item.version, decision=verdict)
        for i, score in enumerate(HARMFUL_AT + FINE_AT, start=10):
            out = output(i, "release", score)
            sample = QaSample(output_id=out.id, policy_name="default", sample_rate=0.5)  # type: ignore[attr-defined]
            s.add(sample)
            s.flush()
            harmful = score in HARMFUL_AT
            label = qa.Label(harmful=harmful, categories=("toxicity",) if harmful else ())
            qa.label_sample(session=s, sample_id=sample.id, reviewer=rita, label=label)
    engine.dispose()


def test_report_carries_the_miss_rate_and_qa_weighted_suggestion(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    build_db(url)
    config = tmp_path / "modgate.toml"
    config.write_text(CONFIG, encoding="utf-8")
    args = ["policy", "--database-url", url, "report", "--config", str(config)]
    result = CliRunner().invoke(cli, [*args, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["qa_labelled"] == 20
    rows = {(m["policy"], m["category"]): m for m in report["miss_rates"]}
    root = Z * math.sqrt(2 * 18 / 20 + Z * Z / 4)
    low, high = (2 + Z * Z / 2 - root) / (20 + Z * Z), (2 + Z * Z / 2 + root) / (20 + Z * Z)
    assert rows[("default", "any")]["harmful"] == 2 and rows[("default", "any")]["sampled"] == 20
    assert rows[("default", "any")]["estimate"] == 0.1
    assert math.isclose(rows[("default", "any")]["low"], low) and math.isclose(
        rows[("default", "any")]["high"], high
    )
    assert rows[("default", "toxicity")]["harmful"] == 2 and rows[("default", "any")]["sample_rates"] == [0.5]
    assert rows[("strict", "any")] == {
        "policy": "strict",
        "category": "any",
        "harmful": 0,
        "sampled": 0,
        "estimate": None,
        "low": None,
        "high": None,
        "confidence": 0.95,
        "sample_rates": [],
    }
    (row,) = [c for c in report["categories"] if c["category"] == "toxicity"]
    # Held verdicts alone: 0.82 approved, 0.95 rejected -> suggestion 0.95. With the QA labels (each
    # standing for 2 released outputs): t = 0.3 releases the 18 fine ones (0 bad); t = 0.4 adds a
    # harmful one, 2 / 38 > 1%. The suggestion drops to 0.3.
    assert row["suggested_hold"] == 0.3 and (row["qa_labelled"], row["qa_harmful"]) == (20, 2)

    table = CliRunner().invoke(cli, args)
    assert table.exit_code == 0, table.output
    assert (
        "miss rate: share of released outputs that QA reviewers labelled harmful (Wilson 95% interval)"
        in (table.output)
    )
    assert f"10.0% [{100 * low:.1f}%, {100 * high:.1f}%]  2 harmful of n = 20 labelled (sample rate 0.5)" in (
        table.output
    )
    assert "no labelled QA samples (n = 0): no estimate" in table.output
    assert "default/toxicity: 2 of 20" in table.output


def test_a_bad_qa_table_is_a_usage_error(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    migrate.upgrade(url)
    config = tmp_path / "modgate.toml"
    config.write_text("[review.qa.default]\nsample_rate = 2\n", encoding="utf-8")
    bad = CliRunner().invoke(cli, ["policy", "--database-url", url, "report", "--config", str(config)])
    assert bad.exit_code == 2 and "review.qa.default.sample_rate: a share of released outputs" in bad.output
    assert "Traceback" not in bad.output
