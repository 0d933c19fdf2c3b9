"""`modgate serve` on PostgreSQL with the web queue needs one configured session secret (replicas)."""

from __future__ import annotations

from click.testing import CliRunner

from gateway.cli import cli
from gateway.config import load_settings
from gateway.server import StartupError, check_shared_session_secret

PG = "postgresql://nobody@127.0.0.1:1/modgate"  # never connected to: the check comes first
SECRET = "s" * 40


def _check(**overrides: object) -> str | None:
    try:
        check_shared_session_secret(load_settings(env={}, overrides=overrides))
    except StartupError as exc:
        return str(exc)
    return None


def test_serve_refuses_postgresql_web_queue_without_a_secret() -> None:
    result = CliRunner().invoke(cli, ["serve", "--database-url", PG], env={"MODGATE_CONFIG": ""})
    assert result.exit_code == 1
    assert "session_secret is not set and the database is PostgreSQL" in result.output
    assert "MODGATE_SESSION_SECRET" in result.output
    assert "Traceback" not in result.output


def test_which_settings_are_refused() -> None:
    assert _check(database_url=PG) is not None
    assert _check(database_url="postgresql+psycopg://u@h/db") is not None
    assert _check(database_url=PG, session_secret=SECRET) is None
    assert _check(database_url=PG, web_enabled=False) is None
    assert _check(database_url="sqlite:///var/x.db") is None  # one machine: a per-process secret is fine
