"""Fixtures for the deployment tests: the test PostgreSQL server (tests/support/pg.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.pg import PostgresServer, postgres_server


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    yield from postgres_server()
