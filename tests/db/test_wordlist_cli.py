"""`modgate wordlist ...`: a list made, changed, attached and shown from the command line, audited
with the operator as actor; refusals are one line and an exit code, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner, Result
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from gateway.audit import events
from gateway.cli import cli
from gateway.policies.store import active_set, is_seeded, seed
from gateway.storage.models import AuditEvent
from gateway.wordlists.store import served_lists


def _run(url: str, *args: str) -> Result:
    return CliRunner().invoke(cli, ["wordlist", "--database-url", url, *args], catch_exceptions=False)


def _refused(result: Result) -> str:
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    return result.output


def test_round_trip(tmp_path: Path, db_url: str, db: sessionmaker[Session]) -> None:
    words = tmp_path / "brand.txt"
    words.write_text("# rivals\nZorblax\nquux*  # any quux word\n", encoding="utf-8")
    made = _run(db_url, "create", "brand", "--words-file", str(words))
    assert made.exit_code == 0 and "2 block entries, 0 allow entries" in made.output, made.output
    assert _run(db_url, "allow", "brand", "quux club").exit_code == 0
    assert _run(db_url, "add", "brand", "flimflam", "--tenant", "").exit_code == 0
    assert _run(db_url, "remove", "brand", "ZORBLAX").exit_code == 0
    assert _run(db_url, "create", "own", "--tenant", "acme").exit_code == 0
    assert _run(db_url, "add", "own", "--tenant", "acme", "zorblax").exit_code == 0
    attached = _run(db_url, "attach", "brand", "--to-policy", "default")
    assert attached.exit_code == 0, attached.output
    assert _run(db_url, "attach", "own", "--tenant", "acme", "--to-tenant", "acme").exit_code == 0
    shown = _run(db_url, "show", "brand", "--json")
    row = json.loads(shown.output)
    assert row["words"] == ["quux*", "flimflam"] and row["allow"] == ["quux club"] and row["version"] == 4
    assert row["attached"][0]["kind"] == "policy" and row["attached"][0]["target"] == "default"
    old = _run(db_url, "show", "brand", "--version", "1")
    assert old.exit_code == 0 and "zorblax" in old.output and "latest v4" in old.output
    history = _run(db_url, "history", "brand").output.splitlines()
    assert [line.split()[0] for line in history] == ["v1", "v2", "v3", "v4"]
    listed = _run(db_url, "list").output
    assert "brand (global) v4" in listed and "own (tenant acme) v2" in listed and "tenant acme" in listed
    with db() as s:
        served = served_lists(session=s)
        actors = {
            e.actor for e in s.scalars(select(AuditEvent).where(AuditEvent.event_type.like("wordlist.%")))
        }
        kinds = [e.event_type for e in s.scalars(select(AuditEvent).order_by(AuditEvent.id))]
    assert [x.name for x in served.by_policy["default"]] == ["brand"]
    assert [x.words for x in served.by_tenant["acme"]] == [("zorblax",)]
    assert len(actors) == 1 and next(iter(actors)).startswith("cli:")
    assert kinds.count(events.WORDLIST_ATTACHED) == 2 and kinds.count(events.WORDLIST_CHANGED) == 4
    detached = _run(db_url, "detach", "brand", "--to-policy", "default")
    assert detached.exit_code == 0
    with db() as s:
        assert "default" not in served_lists(session=s).by_policy


def test_refusals(tmp_path: Path, db_url: str) -> None:
    assert _run(db_url, "create", "brand").exit_code == 0
    assert "already exists" in _refused(_run(db_url, "create", "brand"))
    assert "no word list" in _refused(_run(db_url, "add", "nope", "x"))
    assert "at least one entry" in _refused(_run(db_url, "add", "brand"))
    assert "not in the list" in _refused(_run(db_url, "remove", "brand", "x"))
    assert "exactly one of" in _refused(_run(db_url, "attach", "brand"))
    assert "no policy 'nope'" in _refused(_run(db_url, "attach", "brand", "--to-policy", "nope"))
    assert "cannot read" in _refused(_run(db_url, "create", "x", "--words-file", str(tmp_path / "missing")))
    assert _run(db_url, "create", "own", "--tenant", "acme").exit_code == 0
    assert "attaches to tenant 'acme' only" in _refused(
        _run(db_url, "attach", "own", "--tenant", "acme", "--to-policy", "default")
    )


def test_a_list_made_before_the_first_serve_does_not_skip_the_policy_seed(
    db_url: str, db: sessionmaker[Session]
) -> None:
    assert _run(db_url, "create", "brand", "--tenant", "acme").exit_code == 0
    with db() as s, s.begin():
        assert not is_seeded(session=s)
        revision = seed(session=s, tables={"custom": {"extends": "default"}}, actor="config:seed")
    assert revision == 2
    with db() as s:
        assert set(active_set(session=s).versions) == {"custom"}
