"""The database password is never printed: not by `modgate serve` (its refusal of an outdated schema,
its logs while it migrates, starts and stops), nor by the `modgate db` commands, on success or failure.

The test server trusts every local connection, so a URL may carry any password and still connect; the
rules for each URL shape (query passwords, no password, unparsable) are unit-tested in
tests/unit/storage/test_storage_units.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy.engine import make_url

from gateway.commands.db import db_group
from tests.support.pg import PostgresServer
from tests.support.serve_process import free_ports, serve_command, spawn_serve, wait_serving

pytestmark = pytest.mark.postgres

PASSWORD = "S3cret-pw-4f1e"


@pytest.fixture
def url(pg_server: PostgresServer) -> Iterator[str]:
    """An empty database, reached with a URL that carries a password."""
    name = pg_server.create()
    yield make_url(pg_server.url_for(name)).set(password=PASSWORD).render_as_string(hide_password=False)
    pg_server.drop(name)


def shown(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def test_serve_refusing_an_outdated_schema_prints_the_url_without_its_password(
    url: str, demo_model_dir: Path
) -> None:
    proc = spawn_serve(serve_command(demo_model_dir, database_url=url, no_web=True, metrics_address=""))
    printed, _ = proc.communicate(timeout=120)
    assert proc.returncode == 1, printed
    assert f"the database schema at {shown(url)} is not at the latest revision" in printed
    assert PASSWORD not in printed


def test_serve_logs_no_password_while_it_migrates_serves_and_stops(url: str, demo_model_dir: Path) -> None:
    (grpc_port,) = free_ports(1)
    address = f"127.0.0.1:{grpc_port}"
    argv = serve_command(
        demo_model_dir, grpc_address=address, database_url=url, no_web=True, metrics_address="", migrate=True
    )
    proc = spawn_serve([*argv, "--log-level", "DEBUG"])
    try:
        wait_serving(address, proc)
    finally:
        proc.terminate()
        printed, _ = proc.communicate(timeout=60)
    assert "upgrading database schema" in printed
    assert PASSWORD not in printed


def test_db_commands_print_the_url_without_its_password(url: str) -> None:
    runner = CliRunner()
    for args in (["upgrade"], ["current"], ["downgrade", "base"]):
        result = runner.invoke(db_group, ["--database-url", url, *args])
        assert PASSWORD not in result.output, args
    assert f"database at {shown(url)} is at revision base" in result.output
    unreachable = make_url(url).set(port=1).render_as_string(hide_password=False)
    failed = runner.invoke(db_group, ["--database-url", unreachable, "current"])
    assert failed.exit_code == 1 and f"database error at {shown(unreachable)}" in failed.output
    assert PASSWORD not in failed.output
