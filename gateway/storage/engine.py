"""Engine and session factories: the only place that knows SQLite needs special care.

SQLite, as configured here:

* ``journal_mode=WAL``: readers never block the writer (and the reverse);
* ``busy_timeout``: a writer waits for the lock instead of failing at once with "database is locked";
* ``foreign_keys=ON``: SQLite ignores foreign keys unless asked, per connection;
* every transaction starts with ``BEGIN IMMEDIATE``. pysqlite's own transaction handling is switched
  off (``isolation_level=None``) and the ``begin`` event emits the BEGIN (the SQLAlchemy pysqlite
  recipe). IMMEDIATE takes the single write lock at the start, so a read-then-write sequence (claim the
  next review item, read the last audit hash and append) cannot interleave with another writer; with a
  deferred BEGIN, the second writer of two would fail with ``SQLITE_BUSY_SNAPSHOT`` mid-transaction,
  which ``busy_timeout`` does not retry. SQLite has one writer anyway, so the cost is small.
  A transaction opened with the execution option ``READ_ONLY`` (``gateway.storage.tx.in_read_only``)
  starts with a deferred ``BEGIN`` instead: it only reads, so it never takes the write lock, and under
  WAL it neither waits for writers nor makes them wait.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

DEFAULT_DATABASE_URL = "sqlite:///var/modgate.db"
# Execution option of a read-only transaction (see the module docstring).
READ_ONLY = "modgate_read_only"
SQLITE_BUSY_TIMEOUT_MS = 30_000


def normalize_url(url: str) -> str:
    """Pick psycopg 3 for bare ``postgresql://`` URLs (SQLAlchemy would default to psycopg2)."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def redact_url(url: str) -> str:
    """The URL without its password, for logs and messages: the password part and any query parameter
    that carries one (libpq takes `?password=...` and `?sslpassword=...` too) become `***`. A URL with
    nothing to hide comes back as given; an unparsable one is not echoed at all."""
    try:
        parsed = make_url(url)
    except Exception:  # any parse failure: echo nothing of it
        return "<invalid database URL>"
    secret_keys = [key for key in parsed.query if "password" in key.lower()]
    if parsed.password is None and not secret_keys:
        return url
    hidden = parsed.update_query_dict(dict.fromkeys(secret_keys, "***")) if secret_keys else parsed
    # The query is rendered percent-encoded: its '***' as it is in the password part.
    return hidden.render_as_string(hide_password=True).replace("=%2A%2A%2A", "=***")


def make_engine(url: str, *, sqlite_foreign_keys: bool = True, **kwargs: Any) -> Engine:
    """Build an Engine for ``url``; for a SQLite file, create its parent directory first.

    ``sqlite_foreign_keys=False`` is for migrations only: SQLite batch operations recreate tables, which
    must not cascade or fail on foreign keys mid-way (the PRAGMA is a no-op inside a transaction, so it
    has to be set when the connection opens).
    """
    # Never bound parameters in exception text: they hold prompts and withheld generated text, and
    # exception text ends up in logs. Not overridable.
    kwargs["hide_parameters"] = True
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        kwargs.setdefault("pool_pre_ping", True)
        return create_engine(url, **kwargs)

    database = parsed.database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, **kwargs)
    _configure_sqlite(engine, foreign_keys=sqlite_foreign_keys)
    return engine


def _configure_sqlite(engine: Engine, *, foreign_keys: bool) -> None:
    """Attach the connect and begin events described in the module docstring."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves, see _on_begin
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute(f"PRAGMA foreign_keys = {'ON' if foreign_keys else 'OFF'}")
            if engine.url.database not in (None, "", ":memory:"):
                # synchronous stays FULL: a ticket or audit row a client was told about must survive
                # a power cut, not only a process crash.
                cursor.execute("PRAGMA journal_mode = WAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        read_only = connection.get_execution_options().get(READ_ONLY, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded attributes after commit, so results can be returned to callers.

    Use as ``with Session() as s, s.begin(): ...``; data functions never commit.
    """
    return sessionmaker(bind=engine, expire_on_commit=False)


def is_postgresql(session_or_engine: Session | Engine) -> bool:
    """Whether the bound database is PostgreSQL (for row locks and advisory locks)."""
    bind = session_or_engine.get_bind() if isinstance(session_or_engine, Session) else session_or_engine
    return bind.dialect.name == "postgresql"
