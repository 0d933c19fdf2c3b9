"""Reviewer accounts: create, authenticate, list, disable. Data functions: ``session=``, no commit."""

from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from gateway.audit import append as audit_append
from gateway.audit import events
from gateway.review.errors import AlreadyExists, InvalidArgument, NotFound
from gateway.review.passwords import (
    check_password_policy,
    dummy_hash,
    hash_password,
    needs_rehash,
    verify_password,
)
from gateway.storage.base import utcnow
from gateway.storage.models import Reviewer, ReviewerRole, ReviewItem, ReviewState

_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")


def get_reviewer(*, session: Session, username: str) -> Reviewer:
    """The reviewer called ``username``, or NotFound."""
    reviewer = session.scalars(select(Reviewer).where(Reviewer.username == username)).one_or_none()
    if reviewer is None:
        raise NotFound(f"no reviewer {username!r}")
    return reviewer


def create_reviewer(
    *,
    session: Session,
    username: str,
    password: str,
    role: ReviewerRole | str = ReviewerRole.REVIEWER,
    actor: str = "system",
) -> Reviewer:
    """Add a reviewer (password hashed with scrypt) and audit it; AlreadyExists if the name is taken."""
    if not _USERNAME.fullmatch(username):
        raise InvalidArgument(
            "username must be 1-64 characters: letters, digits, '_', '.', '@', '-', starting alphanumeric"
        )
    try:
        role = ReviewerRole(role)
        check_password_policy(password)
    except ValueError as exc:
        raise InvalidArgument(str(exc)) from None
    if session.scalar(select(Reviewer.id).where(Reviewer.username == username)) is not None:
        raise AlreadyExists(f"reviewer {username!r} already exists")
    reviewer = Reviewer(username=username, password_hash=hash_password(password), role=role, disabled=False)
    session.add(reviewer)
    session.flush()
    audit_append(
        session=session,
        event_type=events.REVIEWER_CREATED,
        actor=actor,
        action="create",
        payload={"reviewer_id": reviewer.id, "username": username, "role": role.value},
    )
    return reviewer


def authenticate_reviewer(*, session: Session, username: str, password: str) -> Reviewer | None:
    """The enabled reviewer with this username and password, else None; audits success and failure.

    An unknown username costs the same scrypt run as a wrong password (no user enumeration by timing).
    The caller must commit even on failure, so that the ``reviewer.login_failed`` event is kept.
    """
    reviewer = session.scalars(select(Reviewer).where(Reviewer.username == username)).one_or_none()
    valid = verify_password(password, reviewer.password_hash if reviewer is not None else dummy_hash())
    if reviewer is None or not valid or reviewer.disabled:
        why = (
            "unknown user"
            if reviewer is None
            else ("disabled" if reviewer.disabled and valid else "bad password")
        )
        audit_append(
            session=session,
            event_type=events.REVIEWER_LOGIN_FAILED,
            actor=f"reviewer:{username[:64]}",
            action="login",
            payload={"reason": why},
        )
        return None
    if needs_rehash(reviewer.password_hash):
        reviewer.password_hash = hash_password(password)
    audit_append(
        session=session,
        event_type=events.REVIEWER_LOGIN,
        actor=f"reviewer:{username}",
        action="login",
        payload={"reviewer_id": reviewer.id},
    )
    return reviewer


def list_reviewers(*, session: Session, include_disabled: bool = True) -> list[Reviewer]:
    """All reviewers by username."""
    stmt = select(Reviewer).order_by(Reviewer.username)
    if not include_disabled:
        stmt = stmt.where(Reviewer.disabled.is_(False))
    return list(session.scalars(stmt))


def disable_reviewer(
    *, session: Session, username: str, actor: str = "system", now: datetime | None = None
) -> Reviewer:
    """Disable a reviewer and hand their claimed items back to the queue at once (no lease wait)."""
    reviewer = get_reviewer(session=session, username=username)
    now = now or utcnow()
    reviewer.disabled = True
    released = len(
        session.execute(
            update(ReviewItem)
            .where(ReviewItem.claimed_by == reviewer.id, ReviewItem.state == ReviewState.CLAIMED)
            .values(
                state=ReviewState.PENDING,
                claimed_by=None,
                claimed_at=None,
                lease_expires_at=None,
                version=ReviewItem.version + 1,
                updated_at=now,
            )
            .returning(ReviewItem.id)
            .execution_options(synchronize_session="fetch")
        ).all()
    )
    session.flush()
    audit_append(
        session=session,
        event_type=events.REVIEWER_DISABLED,
        actor=actor,
        action="disable",
        payload={"reviewer_id": reviewer.id, "username": username, "released_items": released},
    )
    return reviewer
