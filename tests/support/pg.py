"""Throwaway databases on the test PostgreSQL server (127.0.0.1:5432, trust auth), shared by every test
directory that needs PostgreSQL. Tests that use them skip with a visible reason where no server runs."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

PG_ADMIN_URL = os.environ.get("MODGATE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


class PostgresServer:
    """Creates and drops throwaway databases on the test server."""

    def __init__(self, admin: Engine) -> None:
        self.admin = admin
        self.created: list[str] = []

    def url_for(self, name: str) -> str:
        return make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)

    def create(self, template: str | None = None) -> str:
        name = f"modgate_test_{uuid.uuid4().hex[:12]}"
        with self.admin.connect() as conn:
            suffix = f" TEMPLATE {template}" if template else ""
            conn.execute(text(f'CREATE DATABASE "{name}"{suffix}'))
        self.created.append(name)
        return name

    def drop(self, name: str) -> None:
        with self.admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self.created.remove(name)

    def sql(self, statement: str) -> None:
        """Runs an administrative statement (autocommit) on the server."""
        with self.admin.connect() as conn:
            conn.execute(text(statement))


def postgres_server() -> Iterator[PostgresServer]:
    """For a session fixture: the server, or a skip naming why; drops what it created afterwards."""
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as exc:
        admin.dispose()
        pytest.skip(f"PostgreSQL server not reachable at {PG_ADMIN_URL}: {exc.orig}")
    server = PostgresServer(admin)
    yield server
    for name in list(server.created):
        server.drop(name)
    admin.dispose()
