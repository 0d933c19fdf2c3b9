"""Migrations: upgrade/downgrade/upgrade on both backends, and no drift between models and migrations."""

from __future__ import annotations

import configparser
import io
import subprocess
import sys
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column, Integer, MetaData, Table, inspect

from gateway.storage import Base, make_engine, migrate

REPO = Path(__file__).resolve().parents[2]
TABLES = {
    "generation_requests",
    "generation_outputs",
    "review_items",
    "reviewers",
    "api_keys",
    "audit_events",
    "rate_buckets",
    "webhook_endpoints",
    "webhook_deliveries",
    "review_verdicts",
    "prompt_runs",
    "qa_samples",
    "policy_versions",
    "moderation_revisions",
    "policy_activations",
    "policy_rules",
    "word_lists",
    "word_list_versions",
    "word_list_attachments",
}


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def _diffs(url: str, metadata: MetaData) -> list[object]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "target_metadata": metadata}
            )
            return list(compare_metadata(context, metadata))
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade(empty_db_url: str) -> None:
    assert migrate.current(empty_db_url) is None
    assert not migrate.is_up_to_date(empty_db_url)

    migrate.upgrade(empty_db_url)
    assert migrate.current(empty_db_url) == migrate.head()
    assert migrate.is_up_to_date(empty_db_url)
    assert _tables(empty_db_url) == TABLES

    migrate.downgrade(empty_db_url, "base")
    assert migrate.current(empty_db_url) is None
    assert _tables(empty_db_url) == set()

    migrate.upgrade(empty_db_url, "head")
    assert _tables(empty_db_url) == TABLES
    assert migrate.is_up_to_date(empty_db_url)


def test_models_match_migrations(db_url: str) -> None:
    """The `alembic check` of this project: a model change without a migration fails here."""
    assert _diffs(db_url, Base.metadata) == []


def test_drift_check_catches_a_missing_migration(db_url: str) -> None:
    """The check above can fail: a table the migrations do not create is reported."""
    drifted = MetaData(naming_convention=Base.metadata.naming_convention)
    for table in Base.metadata.tables.values():
        table.to_metadata(drifted)
    Table("not_migrated", drifted, Column("id", Integer, primary_key=True))
    drifted.tables["reviewers"].append_column(Column("shoe_size", Integer))
    diffs = _diffs(db_url, drifted)
    kinds = {(d[0], d[1].name if d[0] == "add_table" else d[3].name) for d in diffs if isinstance(d, tuple)}
    assert kinds == {("add_table", "not_migrated"), ("add_column", "shoe_size")}


def test_single_head_and_migrations_found_from_any_cwd(tmp_path: Path) -> None:
    code = "from gateway.storage import migrate; print(migrate.head())"
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == migrate.head()


def test_alembic_ini_has_no_database_url() -> None:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(REPO / "alembic.ini")
    assert parser.has_section("alembic")
    assert not parser.has_option("alembic", "sqlalchemy.url")
    values = [value for section in parser.sections() for _, value in parser.items(section)]
    assert not [v for v in values if "://" in v]


@pytest.mark.parametrize("url", ["sqlite:///relative/dir/x.db"])
def test_make_engine_creates_parent_directory(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000
    finally:
        engine.dispose()
    assert (tmp_path / "relative" / "dir" / "x.db").is_file()


def test_alembic_check_command(db_url: str) -> None:
    """Alembic's own `alembic check` against the migrated database (through migrations/env.py)."""
    command.check(migrate.alembic_config(db_url))


def test_alembic_ini_and_environment_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`alembic upgrade head` from the repository root takes the URL from MODGATE_DATABASE_URL."""
    url = f"sqlite:///{tmp_path / 'from-env.db'}"
    monkeypatch.setenv("MODGATE_DATABASE_URL", url)
    monkeypatch.chdir(REPO)
    quiet = {"configure_logger": False}  # keep alembic.ini's logging setup out of the test process
    command.upgrade(Config("alembic.ini", attributes=quiet), "head")
    assert migrate.current(url) == migrate.head()
    # Offline SQL (`alembic upgrade head --sql`) for a PostgreSQL deployment; nothing connects.
    monkeypatch.setenv("MODGATE_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    buffer = io.StringIO()
    config = Config("alembic.ini", output_buffer=buffer, attributes=quiet)
    command.upgrade(config, "base:head", sql=True)
    assert "CREATE TABLE audit_events" in buffer.getvalue()
    assert "ALTER TABLE api_keys ADD COLUMN reviewer_id" in buffer.getvalue()


def _try_update_audit(url: str) -> str | None:
    """Appends an audit event and tries to change it: None if allowed, else the database's refusal."""
    import uuid

    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            next_id = conn.execute(text("SELECT COALESCE(MAX(id), 0) + 1 FROM audit_events")).scalar()
            conn.execute(
                text(
                    "INSERT INTO audit_events (id, created_at, event_type, actor, payload, prev_hash, hash) "
                    "VALUES (:id, CURRENT_TIMESTAMP, 'key.created', 'x', '{}', :prev, :hash)"
                ),
                {"id": next_id, "prev": "0" * 64, "hash": uuid.uuid4().hex * 2},
            )
        try:
            with engine.begin() as conn:
                conn.execute(text("UPDATE audit_events SET actor = 'y'"))
                conn.execute(text("DELETE FROM audit_events"))
        except DBAPIError as exc:
            return str(exc.orig)
        return None
    finally:
        engine.dispose()


def test_audit_append_only_migration_up_down_up(empty_db_url: str) -> None:
    """0008's triggers exist at head, go with a downgrade below 0008, and come back."""
    migrate.upgrade(empty_db_url)
    refusal = _try_update_audit(empty_db_url)
    assert refusal is not None and "append-only" in refusal
    migrate.downgrade(empty_db_url, "0007")
    assert _try_update_audit(empty_db_url) is None
    migrate.upgrade(empty_db_url)
    refusal = _try_update_audit(empty_db_url)
    assert refusal is not None and "append-only" in refusal
    migrate.downgrade(empty_db_url, "base")
    assert _tables(empty_db_url) == set()
