"""Tampering with the audit log as an attacker who owns the tables would: the append-only triggers
(migration 0008) are switched off for one transaction, then the SQL runs.

On PostgreSQL a superuser (the test role) sets ``session_replication_role = replica`` for the
transaction, which stops ordinary triggers; on SQLite the triggers are dropped and created again in the
same transaction (SQLite DDL is transactional). Tests that check the triggers themselves do not use this.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, text


@contextmanager
def tampering(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction in which audit rows can be updated and deleted."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SET LOCAL session_replication_role = replica"))
            yield conn
            return
        triggers = conn.execute(
            text("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'audit_events'")
        ).all()
        for name, _ in triggers:
            conn.execute(text(f'DROP TRIGGER "{name}"'))
        yield conn
        for _, sql in triggers:
            conn.execute(text(sql))
