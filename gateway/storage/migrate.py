"""Run Alembic from code (the CLI, the server's start-up check, the tests) without ``alembic.ini``.

The Config is built programmatically with ``script_location`` pointing at the ``migrations/`` folder
beside this module: the Alembic scripts are package data, so an installed wheel migrates as a checkout
does, from any working directory. The database URL travels in ``config.attributes["url"]`` (never in an
ini file), which ``migrations/env.py`` reads first.

On PostgreSQL, upgrades and downgrades run under a session-level advisory lock: replicas that start
together with ``serve --migrate`` (or several ``db upgrade`` jobs) queue on the lock, and each one reads
the schema's revision only once it holds it, so the first migrates and the others find the schema at
head and do nothing. SQLite needs no lock: one file, one machine, and its writers already serialise.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text

from gateway.storage.engine import make_engine

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# The advisory lock's key: any constant 64-bit number that no other code on the database uses for its
# own lock ("modgate" in ASCII). docs/deployment.md names it, so an operator can see who holds it.
MIGRATION_LOCK_KEY = 0x6D6F6467617465


@contextmanager
def migration_lock(url: str) -> Iterator[None]:
    """Holds PostgreSQL's advisory lock for schema changes (waits for it); a no-op on other databases.

    The lock lives on a connection of its own, kept open while the migration runs on another: the
    migration commits in its own transaction, and the lock ends when this connection closes, even if the
    process dies half-way (PostgreSQL releases a dead session's locks).
    """
    engine = make_engine(url)
    try:
        if engine.dialect.name != "postgresql":
            yield
            return
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            try:
                yield
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
    finally:
        engine.dispose()


def alembic_config(url: str | None = None) -> Config:
    """An Alembic Config for ``url`` (``None``: env.py falls back to ``MODGATE_DATABASE_URL``)."""
    if not (MIGRATIONS_DIR / "env.py").is_file():
        raise FileNotFoundError(f"Alembic migrations not found at {MIGRATIONS_DIR}")
    config = Config()
    # '%' would be read as ini interpolation by ConfigParser.
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    if url is not None:
        config.attributes["url"] = url
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the database at ``url`` up to ``revision`` (under :func:`migration_lock`)."""
    with migration_lock(url):
        command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    """Migrate the database at ``url`` down to ``revision`` (``"base"`` drops every table)."""
    with migration_lock(url):
        command.downgrade(alembic_config(url), revision)


def head() -> str:
    """The newest revision id in ``migrations/versions`` (exactly one head is allowed)."""
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    if len(heads) != 1:
        raise RuntimeError(f"expected exactly one migration head, found {heads}")
    return heads[0]


def current(url: str) -> str | None:
    """The revision the database at ``url`` is at, or None for an empty (unmigrated) database."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            heads = MigrationContext.configure(connection).get_current_heads()
    finally:
        engine.dispose()
    if not heads:
        return None
    if len(heads) > 1:
        raise RuntimeError(f"database is at several heads: {heads}")
    return heads[0]


def is_up_to_date(url: str) -> bool:
    """Whether the database at ``url`` is at the newest revision (the server refuses to start if not)."""
    return current(url) == head()
