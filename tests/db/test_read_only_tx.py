"""`run_read_only`: the transaction WatchResult's polls use. It reads like any other, writes nothing
(PostgreSQL refuses a write in it; on SQLite it is rolled back), and on SQLite it does not wait for the
write lock another connection holds."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from gateway.review.reviewers import create_reviewer
from gateway.storage.models import Reviewer
from gateway.storage.tx import run_read_only


def count_reviewers(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Reviewer)) or 0


def test_reads_and_writes_nothing(db: sessionmaker[Session], engine: Engine) -> None:
    assert run_read_only(db, count_reviewers) == 0

    def sneak_a_write(session: Session) -> None:
        create_reviewer(session=session, username="sneaky", password="correct horse battery staple")

    if engine.dialect.name == "postgresql":
        with pytest.raises(DBAPIError, match="read-only transaction"):
            run_read_only(db, sneak_a_write)
    else:
        run_read_only(db, sneak_a_write)
    assert run_read_only(db, count_reviewers) == 0
    with db() as session, session.begin():  # the pooled connection writes again after a read-only use
        sneak_a_write(session)
    assert run_read_only(db, count_reviewers) == 1


def test_sqlite_read_does_not_wait_for_the_write_lock(db: sessionmaker[Session], engine: Engine) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite's single write lock")
    with engine.connect() as writer:
        writer.exec_driver_sql("SELECT 1")  # BEGIN IMMEDIATE: this connection holds the write lock
        done = threading.Event()
        result: list[int] = []

        def read() -> None:
            result.append(run_read_only(db, count_reviewers))
            done.set()

        threading.Thread(target=read, daemon=True).start()
        assert done.wait(5), "the read waited for the writer"
        assert result == [0]
        writer.rollback()
