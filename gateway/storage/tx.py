"""Runs a unit of database work in its own transaction, off the event loop.

Every gRPC and web handler goes through here, so that "the database is unreachable or locked" is the same
clear UNAVAILABLE everywhere, and the caller never holds a session across an await.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import Session, sessionmaker

from gateway.errors import Unavailable
from gateway.storage.engine import READ_ONLY

log = logging.getLogger(__name__)
T = TypeVar("T")


def run_in_transaction(sessions: sessionmaker[Session], work: Callable[[Session], T]) -> T:
    """`work(session)` inside `with session.begin()`: committed when it returns, rolled back if it raises."""
    try:
        with sessions() as session, session.begin():
            return work(session)
    except (OperationalError, PoolTimeoutError) as exc:
        log.error("database unavailable: %s", exc.__class__.__name__, exc_info=True)
        raise Unavailable("the gateway's database is unavailable; retry later") from exc


async def in_transaction(sessions: sessionmaker[Session], work: Callable[[Session], T]) -> T:
    return await asyncio.to_thread(run_in_transaction, sessions, work)


def run_read_only(sessions: sessionmaker[Session], work: Callable[[Session], T]) -> T:
    """`run_in_transaction` for work that only reads (polls): on SQLite a deferred BEGIN, which takes no
    write lock; on PostgreSQL a READ ONLY transaction, so a write slipped into `work` fails loudly."""
    options = {READ_ONLY: True, "postgresql_readonly": True}
    try:
        with sessions() as session:
            session.connection(execution_options=options)
            try:
                return work(session)
            finally:
                session.rollback()  # nothing to commit; ends the read transaction
    except (OperationalError, PoolTimeoutError) as exc:
        log.error("database unavailable: %s", exc.__class__.__name__, exc_info=True)
        raise Unavailable("the gateway's database is unavailable; retry later") from exc


async def in_read_only(sessions: sessionmaker[Session], work: Callable[[Session], T]) -> T:
    return await asyncio.to_thread(run_read_only, sessions, work)
