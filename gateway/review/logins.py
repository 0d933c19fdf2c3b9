"""Reviewer login in three steps, so that the slow password check never runs inside a transaction.

On SQLite every read-write transaction holds the database's one write lock from its first statement
(``BEGIN IMMEDIATE``, gateway/storage/engine.py), and an Argon2 check takes tens of milliseconds: checking the
password inside the transaction let a few dozen bad logins a second stall every other writer of the
gateway. So a login

1. reads the stored hash in a read-only transaction (`run_read_only`: on SQLite a deferred BEGIN,
   which takes no write lock, so a burst of logins does not queue behind, or hold up, the writers),
2. checks the password, and computes the upgraded hash when the stored one is outdated (scrypt, or
   other Argon2 parameters), with no transaction open,
3. records the outcome in a second short transaction: the audit event, the upgraded hash. The account
   is read again there; a password changed or an account disabled between steps 1 and 3 fails the login.

An unknown username costs the same Argon2 run as a wrong password (no user enumeration by timing).
The audit event is written either way (``reviewer.login`` / ``reviewer.login_failed``).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from gateway.audit import append as audit_append
from gateway.audit import events
from gateway.review.passwords import (
    OWASP,
    HashParams,
    dummy_hash,
    hash_password,
    needs_rehash,
    verify_password,
)
from gateway.storage.models import Reviewer
from gateway.storage.tx import run_in_transaction, run_read_only


@dataclass(frozen=True)
class LoggedIn:
    """Who logged in, and the session epoch their cookie must carry (see ``Reviewer.session_epoch``)."""

    reviewer_id: str
    username: str
    role: str
    session_epoch: int


@dataclass(frozen=True)
class _Check:
    stored_hash: str | None  # None: no such user
    valid: bool
    upgraded_hash: str | None


def _stored_hash(session: Session, username: str) -> str | None:
    return session.scalar(select(Reviewer.password_hash).where(Reviewer.username == username))


def _check(password: str, stored_hash: str | None, params: HashParams) -> _Check:
    valid = verify_password(password, stored_hash if stored_hash is not None else dummy_hash(params))
    valid = valid and stored_hash is not None
    upgraded = None
    if valid and stored_hash is not None and needs_rehash(stored_hash, params=params):
        upgraded = hash_password(password, params=params)
    return _Check(stored_hash=stored_hash, valid=valid, upgraded_hash=upgraded)


def _record(session: Session, username: str, check: _Check) -> LoggedIn | None:
    reviewer = session.scalars(select(Reviewer).where(Reviewer.username == username)).one_or_none()
    why = None
    if reviewer is None or check.stored_hash is None:
        why = "unknown user"
    elif reviewer.password_hash != check.stored_hash or not check.valid:
        why = "bad password"  # wrong, or checked against a password replaced meanwhile
    elif reviewer.disabled:
        why = "disabled"
    if reviewer is None or why is not None:
        audit_append(
            session=session,
            event_type=events.REVIEWER_LOGIN_FAILED,
            actor=f"reviewer:{username[:64]}",
            action="login",
            payload={"reason": why},
        )
        return None
    if check.upgraded_hash is not None:
        reviewer.password_hash = check.upgraded_hash
    audit_append(
        session=session,
        event_type=events.REVIEWER_LOGIN,
        actor=f"reviewer:{username}",
        action="login",
        payload={"reviewer_id": reviewer.id},
    )
    return LoggedIn(
        reviewer_id=reviewer.id,
        username=reviewer.username,
        role=reviewer.role.value,
        session_epoch=reviewer.session_epoch,
    )


def login_reviewer(
    sessions: sessionmaker[Session], *, username: str, password: str, params: HashParams = OWASP
) -> LoggedIn | None:
    """The enabled reviewer with this username and password, else None; audited either way.

    Blocking (one Argon2 run): call it off the event loop. Each step opens its own transaction, which is
    why this takes the session factory rather than a session.
    """
    stored_hash = run_read_only(sessions, lambda session: _stored_hash(session, username))
    check = _check(password, stored_hash, params)
    return run_in_transaction(sessions, lambda session: _record(session, username, check))
