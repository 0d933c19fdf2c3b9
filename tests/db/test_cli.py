"""The db, audit, reviewers and keys command groups, through Click's CliRunner."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from gateway.cli import cli
from gateway.commands.audit import audit_group
from gateway.commands.db import db_group
from gateway.commands.keys import keys_group
from gateway.commands.reviewers import reviewers_group
from gateway.storage import migrate


def _run(group: click.Group, url: str | None, *args: str, **kwargs: object) -> Result:
    argv = (["--database-url", url] if url else []) + list(args)
    return CliRunner().invoke(group, argv, catch_exceptions=False, **kwargs)  # type: ignore[arg-type]


def _clean_failure(result: Result, code: int = 1) -> str:
    """A refusal: the expected exit code, an 'Error:' line, no traceback."""
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    assert "Error" in result.stderr
    return result.stderr


def test_db_upgrade_and_current(empty_db_url: str) -> None:
    before = _run(db_group, empty_db_url, "current")
    assert before.exit_code == 1 and "modgate db upgrade" in before.stdout
    up = _run(db_group, empty_db_url, "upgrade")
    assert up.exit_code == 0, up.output
    assert migrate.current(empty_db_url) == migrate.head()
    now = _run(db_group, empty_db_url, "current")
    assert now.exit_code == 0 and now.stdout.strip() == f"{migrate.head()} (head)"
    down = _run(db_group, empty_db_url, "downgrade", "base")
    assert down.exit_code == 0 and migrate.current(empty_db_url) is None
    assert "Can't locate revision" in _clean_failure(
        _run(db_group, empty_db_url, "upgrade", "--revision", "nope")
    )


def test_commands_refuse_an_unmigrated_database(empty_db_url: str) -> None:
    result = _run(keys_group, empty_db_url, "list")
    assert "modgate db upgrade" in _clean_failure(result)


def test_bad_urls_are_clean_errors(tmp_path) -> None:  # type: ignore[no-untyped-def]
    _clean_failure(_run(db_group, "nonsense://x", "current"), code=2)
    assert "database error" in _clean_failure(
        _run(db_group, "postgresql://postgres@127.0.0.1:1/x", "current")
    )
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert "cannot open" in _clean_failure(_run(db_group, f"sqlite:///{blocker}/sub/x.db", "current"))


def test_url_from_environment(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODGATE_DATABASE_URL", db_url)
    assert _run(db_group, None, "current").exit_code == 0


def _sqlite(path: Path) -> str:
    return f"sqlite:///{path}"


def test_every_data_command_uses_the_configured_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`modgate db upgrade --config F` migrates F's database, and the other commands find it there."""
    monkeypatch.delenv("MODGATE_DATABASE_URL", raising=False)
    monkeypatch.delenv("MODGATE_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)  # the default database (var/modgate.db) would land here
    configured = tmp_path / "configured.db"
    config = tmp_path / "modgate.toml"
    config.write_text(f'[storage]\ndatabase_url = "{_sqlite(configured)}"\n')

    up = CliRunner().invoke(cli, ["db", "upgrade", "--config", str(config)])
    assert up.exit_code == 0, up.output
    assert migrate.current(_sqlite(configured)) == migrate.head()
    assert not (tmp_path / "var").exists(), "the default database was migrated instead"

    created = CliRunner().invoke(
        cli, ["--config", str(config), "keys", "create", "--tenant", "acme", "--name", "ci"]
    )
    assert created.exit_code == 0, created.output
    # MODGATE_CONFIG names the file when no --config is given; group-level --config works too.
    listed = CliRunner().invoke(cli, ["keys", "list", "--json"], env={"MODGATE_CONFIG": str(config)})
    assert listed.exit_code == 0 and json.loads(listed.stdout.splitlines()[0])["tenant"] == "acme"
    grouped = CliRunner().invoke(cli, ["keys", "--config", str(config), "list", "--json"])
    assert grouped.exit_code == 0 and "acme" in grouped.stdout

    # Precedence: file < MODGATE_DATABASE_URL < --database-url.
    other = tmp_path / "other.db"
    env_wins = CliRunner().invoke(
        cli, ["db", "upgrade", "--config", str(config)], env={"MODGATE_DATABASE_URL": _sqlite(other)}
    )
    assert env_wins.exit_code == 0 and migrate.current(_sqlite(other)) == migrate.head()
    third = tmp_path / "third.db"
    flag_wins = CliRunner().invoke(
        cli,
        ["db", "--database-url", _sqlite(third), "upgrade", "--config", str(config)],
        env={"MODGATE_DATABASE_URL": _sqlite(other)},
    )
    assert flag_wins.exit_code == 0 and migrate.current(_sqlite(third)) == migrate.head()


def test_a_bad_config_file_is_a_usage_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("database_url = [1, 2\n")
    result = CliRunner().invoke(cli, ["keys", "list", "--config", str(broken)])
    assert result.exit_code == 2 and "not valid TOML" in result.stderr
    missing = CliRunner().invoke(cli, ["db", "current", "--config", str(tmp_path / "nope.toml")])
    assert missing.exit_code == 2 and "does not exist" in missing.stderr
    assert "Traceback" not in result.output + missing.output


def test_every_command_that_reads_settings_takes_config() -> None:
    def walk(command: click.Command, path: str) -> Iterator[tuple[str, click.Command]]:
        yield path, command
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                yield from walk(sub, f"{path} {name}")

    lacking = [
        path
        for path, command in walk(cli, "modgate")
        if path != "modgate demo-model" and not any("--config" in p.opts for p in command.params)
    ]
    assert not lacking, f"without --config: {lacking}"


def test_reviewers_add_list_disable(db_url: str) -> None:
    added = _run(
        reviewers_group, db_url, "add", "alice", "--role", "admin", "--password-stdin", input="s3cret-pass\n"
    )
    assert added.exit_code == 0 and "created admin alice" in added.stdout
    prompted = _run(reviewers_group, db_url, "add", "bob", input="another-pass\nanother-pass\n")
    assert prompted.exit_code == 0, prompted.output
    listed = _run(reviewers_group, db_url, "list", "--json")
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [(r["username"], r["role"], r["disabled"]) for r in rows] == [
        ("alice", "admin", False),
        ("bob", "reviewer", False),
    ]
    assert "pass" not in listed.stdout and "scrypt" not in listed.stdout
    assert _run(reviewers_group, db_url, "disable", "bob").exit_code == 0
    table = _run(reviewers_group, db_url, "list").stdout
    assert "bob" in table and "disabled" in table


def test_reviewers_refusals(db_url: str) -> None:
    _run(reviewers_group, db_url, "add", "alice", "--password-stdin", input="s3cret-pass\n")
    assert "already exists" in _clean_failure(
        _run(reviewers_group, db_url, "add", "alice", "--password-stdin", input="s3cret-pass\n")
    )
    assert "at least 8" in _clean_failure(
        _run(reviewers_group, db_url, "add", "carol", "--password-stdin", input="short\n")
    )
    _clean_failure(_run(reviewers_group, db_url, "add", "carol", "--password-stdin", input=""), code=2)
    _clean_failure(_run(reviewers_group, db_url, "add", "carol", "--role", "god", "--password-stdin"), code=2)
    assert "no reviewer" in _clean_failure(_run(reviewers_group, db_url, "disable", "nobody"))


def test_keys_create_list_revoke(db_url: str) -> None:
    created = _run(keys_group, db_url, "create", "--tenant", "acme", "--name", "jobs", "--scope", "generate")
    assert created.exit_code == 0, created.output
    secret = created.stdout.strip()
    assert secret.startswith("mg_") and "shown" not in created.stdout  # only the secret on stdout
    listed = _run(keys_group, db_url, "list", "--json")
    [row] = [json.loads(line) for line in listed.stdout.splitlines()]
    assert row["tenant"] == "acme" and row["scopes"] == ["generate"] and row["revoked_at"] is None
    assert secret not in listed.stdout and secret.split("_", 2)[2] not in listed.stdout
    assert secret.startswith(f"mg_{row['prefix']}_")
    revoked = _run(keys_group, db_url, "revoke", row["id"])
    assert revoked.exit_code == 0, revoked.output
    [row] = [json.loads(line) for line in _run(keys_group, db_url, "list", "--json").stdout.splitlines()]
    assert row["revoked_at"] is not None
    assert _run(keys_group, db_url, "list", "--active").stdout == ""
    assert "no API key" in _clean_failure(_run(keys_group, db_url, "revoke", "nope"))
    for typo in ("BAD SCOPE", "audit:*", "admin"):  # a scope nobody checks would grant nothing, silently
        assert "unknown scope" in _clean_failure(
            _run(keys_group, db_url, "create", "--tenant", "acme", "--name", "x", "--scope", typo)
        )
    _clean_failure(_run(keys_group, db_url, "create", "--name", "x"), code=2)


@pytest.fixture
def populated(db_url: str) -> str:
    """A database with a few audit events (a reviewer and two keys, each audited)."""
    _run(reviewers_group, db_url, "add", "alice", "--password-stdin", input="s3cret-pass\n")
    _run(keys_group, db_url, "create", "--tenant", "acme", "--name", "=HYPERLINK()")
    _run(keys_group, db_url, "create", "--tenant", "globex", "--name", "two")
    return db_url


def test_audit_verify_ok_then_tampered(populated: str, exec_sql: Callable[..., None]) -> None:
    ok = _run(audit_group, populated, "verify")
    assert ok.exit_code == 0 and "OK: 3 rows" in ok.stdout
    head = ok.stdout.strip().rsplit(" ", 1)[1]
    assert _run(audit_group, populated, "verify", "--anchor", head).exit_code == 0
    _clean_failure(_run(audit_group, populated, "verify", "--anchor", "3:xyz"), code=2)
    exec_sql("UPDATE audit_events SET tenant = 'initech' WHERE id = 2")
    message = _clean_failure(_run(audit_group, populated, "verify"))
    assert "TAMPERED at row 2" in message


def test_audit_verify_names_a_deleted_row(populated: str, exec_sql: Callable[..., None]) -> None:
    exec_sql("DELETE FROM audit_events WHERE id = 2")
    assert "row 2" in _clean_failure(_run(audit_group, populated, "verify"))


def test_audit_query_formats_and_filters(populated: str) -> None:
    as_json = _run(audit_group, populated, "query", "--json")
    events = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert [e["event_type"] for e in events] == ["reviewer.created", "key.created", "key.created"]
    assert events[1]["payload"]["name"] == "=HYPERLINK()"

    as_csv = _run(audit_group, populated, "query", "--csv", "--tenant", "acme")
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert len(rows) == 1 and rows[0]["event_type"] == "key.created" and rows[0]["id"] == "2"
    assert json.loads(rows[0]["payload"])["name"] == "=HYPERLINK()"  # JSON payload, not a formula cell
    assert list(rows[0]) == [
        "id",
        "created_at",
        "event_type",
        "actor",
        "tenant",
        "request_id",
        "ticket",
        "action",
        "payload",
    ]

    family = _run(audit_group, populated, "query", "--json", "--event-type", "key.*", "--limit", "1")
    assert [json.loads(line)["id"] for line in family.stdout.splitlines()] == [2]
    assert "--after-id 2" in family.stderr
    page2 = _run(audit_group, populated, "query", "--json", "--event-type", "key.*", "--after-id", "2")
    assert [json.loads(line)["id"] for line in page2.stdout.splitlines()] == [3]
    text = _run(audit_group, populated, "query", "--actor", "nobody")
    assert text.exit_code == 0 and text.stdout == "" and "no matching events" in text.stderr
    future = _run(audit_group, populated, "query", "--json", "--since", "2999-01-01")
    assert future.exit_code == 0 and future.stdout == ""


def test_audit_query_refusals(populated: str) -> None:
    _clean_failure(_run(audit_group, populated, "query", "--json", "--csv"), code=2)
    _clean_failure(_run(audit_group, populated, "query", "--since", "yesterday"), code=2)
    _clean_failure(
        _run(audit_group, populated, "query", "--since", "2030-01-02", "--until", "2030-01-01"), code=2
    )
    _clean_failure(_run(audit_group, populated, "query", "--limit", "0"), code=2)


def test_csv_cells_that_look_like_formulas_are_defused(populated: str) -> None:
    from gateway.commands.audit import _csv_cell

    assert _csv_cell("actor", "=cmd|' /C calc'!A0") == "'=cmd|' /C calc'!A0"
    assert _csv_cell("actor", "key:ab12") == "key:ab12"
    assert _csv_cell("id", 5) == 5
