"""Alembic environment for modgate.

The database URL never lives in ``alembic.ini``. It comes from, in order:

1. ``config.attributes["connection"]``: an open Connection handed in by code (tests);
2. ``config.attributes["url"]``: set by ``gateway.storage.migrate``;
3. ``alembic -x url=...`` on the command line;
4. the ``MODGATE_DATABASE_URL`` environment variable;
5. the gateway's default, ``sqlite:///var/modgate.db`` (relative to the working directory).

SQLite runs with ``render_as_batch=True`` (ALTER TABLE support) and foreign keys off while migrating.
Offline mode (``--sql``) works for PostgreSQL; SQLite batch operations need a live connection.
"""

from __future__ import annotations

import os
from logging.config import fileConfig

from alembic import context
from sqlalchemy.engine import Connection

from gateway.storage import models, policy_models, wordlist_models  # noqa: F401  (registers every table on Base.metadata)
from gateway.storage.base import Base
from gateway.storage.engine import DEFAULT_DATABASE_URL, make_engine, normalize_url

config = context.config
if (
    config.config_file_name is not None
    and config.get_section("loggers") is not None
    and config.attributes.get("configure_logger", True)
):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata


def database_url() -> str:
    """The URL to migrate, by the precedence in the module docstring."""
    url = config.attributes.get("url") or context.get_x_argument(as_dictionary=True).get("url")
    return normalize_url(url or os.environ.get("MODGATE_DATABASE_URL") or DEFAULT_DATABASE_URL)


def _configure(connection: Connection) -> None:
    sqlite = connection.dialect.name == "sqlite"
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=sqlite,
        compare_type=True,
        # make_engine's SQLite connections emit their own BEGIN, so DDL is transactional there too:
        # a migration that fails half-way leaves the schema as it was, as on PostgreSQL.
        transactional_ddl=True,
    )


def run_migrations_offline() -> None:
    """Emit SQL to stdout (``alembic upgrade head --sql``) instead of running it."""
    url = database_url()
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        render_as_batch=url.startswith("sqlite"),
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run the migrations in one transaction (transactional DDL on PostgreSQL and SQLite alike)."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return

    engine = make_engine(database_url(), sqlite_foreign_keys=False)
    try:
        with engine.connect() as connection:
            _configure(connection)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
