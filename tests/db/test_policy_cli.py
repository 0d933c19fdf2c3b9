"""`modgate policy seed / set / show / history / diff / activate`: a round trip through policy files,
audited changes, and clean refusals (exit code and one line, never a traceback)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner, Result
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from gateway.audit import events
from gateway.cli import cli
from gateway.policies.store import active_set
from gateway.storage.models import AuditEvent

CONFIG = """
[moderation.policies.custom]
extends = "default"
description = "the seeded one"

[moderation.policies.custom.thresholds.toxicity]
hold = 0.4
block = 0.9
"""


def _run(tmp_path: Path, url: str, *args: str) -> Result:
    config = tmp_path / "modgate.toml"
    if not config.exists():
        config.write_text(CONFIG, encoding="utf-8")
    return CliRunner().invoke(
        cli, ["--config", str(config), "policy", "--database-url", url, *args], catch_exceptions=False
    )


def _refused(result: Result) -> str:
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    return result.output


def test_round_trip(tmp_path: Path, db_url: str, db: sessionmaker[Session]) -> None:
    seeded = _run(tmp_path, db_url, "seed")
    assert seeded.exit_code == 0 and "revision 1" in seeded.output
    assert "already seeded" in _run(tmp_path, db_url, "seed").output
    shown = _run(tmp_path, db_url, "show", "custom")
    assert shown.exit_code == 0 and "# custom v1 (served" in shown.output
    # What `show` prints is a policy file `set` reads back: edit it and store it.
    edited = shown.output.split("\n", 1)[1].replace("hold = 0.4", "hold = 0.3")
    (tmp_path / "custom.toml").write_text(edited, encoding="utf-8")
    stored = _run(tmp_path, db_url, "set", "custom", str(tmp_path / "custom.toml"))
    assert stored.exit_code == 0, stored.output
    assert "stored custom v2" in stored.output
    with db() as s:
        assert active_set(session=s).versions == {"custom": 1}  # stored, not served
    diff = _run(tmp_path, db_url, "diff", "1", "2").output
    assert "-hold = 0.4\n+hold = 0.3" in diff and "--- custom v1" in diff
    assert "same policy table" in _run(tmp_path, db_url, "diff", "2", "2").output
    activated = _run(tmp_path, db_url, "activate", "2")
    assert activated.exit_code == 0 and "custom v2 is served from revision 2" in activated.output
    with db() as s:
        assert active_set(session=s).versions == {"custom": 2}
        (event,) = s.scalars(select(AuditEvent).where(AuditEvent.event_type == events.POLICY_ACTIVATED))
        assert event.actor.startswith("cli:") and event.payload["version"] == 2
    rows = [json.loads(line) for line in _run(tmp_path, db_url, "history", "--json").output.splitlines()]
    assert [(r["version"], r["active"]) for r in rows] == [(1, False), (2, True)]
    assert rows[1]["policy"]["thresholds"]["toxicity"] == {"hold": 0.3, "block": 0.9}
    assert rows[0]["created_by"] == "config:seed" and rows[1]["activated_by"].startswith("cli:")
    text = _run(tmp_path, db_url, "history", "custom").output
    assert "* v2" in text and "never activated" not in text


def test_refusals_are_clean(tmp_path: Path, db_url: str) -> None:
    _run(tmp_path, db_url, "seed")
    bad = tmp_path / "bad.toml"
    bad.write_text("[thresholds.toxicity]\nhold = 1.5\n", encoding="utf-8")
    assert "moderation.policies.custom.thresholds.toxicity.hold" in _refused(
        _run(tmp_path, db_url, "set", "custom", str(bad))
    )
    bad.write_text("thresholds = [", encoding="utf-8")
    assert "not valid TOML" in _refused(_run(tmp_path, db_url, "set", "custom", str(bad)))
    assert "cannot read the policy file" in _refused(
        _run(tmp_path, db_url, "set", "custom", str(tmp_path / "missing.toml"))
    )
    assert "no policy version 7" in _refused(_run(tmp_path, db_url, "activate", "7"))
    assert "already the active version" in _refused(_run(tmp_path, db_url, "activate", "1"))
    assert "no policy version 9" in _refused(_run(tmp_path, db_url, "diff", "1", "9"))
    assert "no stored policy 'nope'" in _refused(_run(tmp_path, db_url, "show", "nope"))
    assert _refused(_run(tmp_path, db_url, "activate", "one"))


def test_backtest_and_report_use_the_stored_policies(tmp_path: Path, db_url: str) -> None:
    """Once seeded, `extends` in a backtest proposal and the report's thresholds come from the stored
    policies, not the config file: a policy stored only in the database is known to them."""
    proposal = tmp_path / "proposal.toml"
    proposal.write_text('extends = "stored-only"\n', encoding="utf-8")
    since = ["--since", "2026-01-01"]
    before = _run(tmp_path, db_url, "backtest", str(proposal), *since)
    assert "unknown policy 'stored-only'" in _refused(before)
    _run(tmp_path, db_url, "seed")
    (tmp_path / "stored.toml").write_text("review_all = true\n", encoding="utf-8")
    assert _run(tmp_path, db_url, "set", "stored-only", str(tmp_path / "stored.toml")).exit_code == 0
    assert _run(tmp_path, db_url, "activate", "2").exit_code == 0
    after = _run(tmp_path, db_url, "backtest", str(proposal), *since)
    assert after.exit_code == 0, after.output
    assert _run(tmp_path, db_url, "report", "--json").exit_code == 0
