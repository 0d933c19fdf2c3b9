"""Replicas that start together migrate once: `modgate db upgrade` takes PostgreSQL's advisory lock.

Real processes on a fresh PostgreSQL database, as replicas started at the same moment would be.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from sqlalchemy import text

from gateway.storage import make_engine, migrate
from tests.support.pg import PostgresServer

pytestmark = pytest.mark.postgres

UPGRADERS = 4


def _upgrade_process(url: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "db", "--database-url", url, "upgrade"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "MODGATE_CONFIG": ""},
    )


def _wait_until_queued_on_the_lock(url: str, process: subprocess.Popen[str]) -> None:
    """Until PostgreSQL shows a session waiting for (not holding) the migration lock: the process has
    started and reached the lock, so had it not waited it would already be migrating."""
    key = migrate.MIGRATION_LOCK_KEY
    query = text(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        " AND classid = :high AND objid = :low AND objsubid = 1"
    )
    engine = make_engine(url)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with engine.connect() as connection:
                if connection.execute(query, {"high": key >> 32, "low": key & 0xFFFFFFFF}).scalar_one():
                    return
            assert process.poll() is None, process.communicate()[0]
            time.sleep(0.1)
    finally:
        engine.dispose()
    raise AssertionError("the upgrade never queued on the migration lock")


@pytest.fixture
def fresh_pg_url(pg_server: PostgresServer) -> str:
    return pg_server.url_for(pg_server.create())


def test_concurrent_upgrades_all_succeed_and_migrate_once(fresh_pg_url: str) -> None:
    processes = [_upgrade_process(fresh_pg_url) for _ in range(UPGRADERS)]
    outputs = [p.communicate(timeout=120)[0] for p in processes]
    for process, output in zip(processes, outputs, strict=True):
        assert process.returncode == 0, output
        assert f"is at revision {migrate.head()}" in output
    assert migrate.current(fresh_pg_url) == migrate.head()
    engine = make_engine(fresh_pg_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT version_num FROM alembic_version")).all()
    finally:
        engine.dispose()
    assert [r.version_num for r in rows] == [migrate.head()]


def test_upgrade_waits_for_the_lock_holder(fresh_pg_url: str) -> None:
    """While another session holds the lock (a replica migrating), an upgrade waits, then finds head."""
    with migrate.migration_lock(fresh_pg_url):
        waiting = _upgrade_process(fresh_pg_url)
        _wait_until_queued_on_the_lock(fresh_pg_url, waiting)
        assert waiting.poll() is None, waiting.communicate()[0]
        assert migrate.current(fresh_pg_url) is None
        migrate.command.upgrade(migrate.alembic_config(fresh_pg_url), "head")  # the holder migrates
    output = waiting.communicate(timeout=120)[0]
    assert waiting.returncode == 0, output
    assert migrate.current(fresh_pg_url) == migrate.head()
