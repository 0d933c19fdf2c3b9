"""Reviewer accounts: create, list, disable, change password, end sessions. Data functions: ``session=``,
no commit. Logging in is :mod:`gateway.review.logins` (its password check runs outside any transaction)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from gateway.audit import append as audit_append
from gateway.audit import events
from gateway.review.errors import AlreadyExists, InvalidArgument, NotFound
from gateway.review.passwords import OWASP, HashParams, check_password_policy, hash_password
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
    params: HashParams = OWASP,
) -> Reviewer:
    """Add a reviewer (password hashed with Argon2id) and audit it; AlreadyExists if the name is taken."""
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
    reviewer = Reviewer(
        username=username,
        password_hash=hash_password(password, params=params),
        role=role,
        disabled=False,
        session_epoch=0,
    )
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


def usernames(*, session: Session, items: Iterable[ReviewItem]) -> dict[str, str]:
    """Reviewer id -> username for everyone who claimed or decided one of `items`, in one query."""
    ids = {i for item in items for i in (item.claimed_by, item.decided_by) if i}
    if not ids:
        return {}
    rows = session.execute(select(Reviewer.id, Reviewer.username).where(Reviewer.id.in_(ids)))
    return {reviewer_id: username for reviewer_id, username in rows}


def list_reviewers(*, session: Session, include_disabled: bool = True) -> list[Reviewer]:
    """All reviewers by username."""
    stmt = select(Reviewer).order_by(Reviewer.username)
    if not include_disabled:
        stmt = stmt.where(Reviewer.disabled.is_(False))
    return list(session.scalars(stmt))


def disable_reviewer(
    *, session: Session, username: str, actor: str = "system", now: datetime | None = None
) -> Reviewer:
    """Disable a reviewer, end their web sessions and hand their claimed items back to the queue at once
    (no lease wait)."""
    reviewer = get_reviewer(session=session, username=username)
    now = now or utcnow()
    reviewer.disabled = True
    reviewer.session_epoch += 1
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


def set_password(
    *,
    session: Session,
    username: str,
    password: str,
    actor: str = "system",
    params: HashParams = OWASP,
) -> Reviewer:
    """Replace a reviewer's password and end all their web sessions (a stolen cookie dies with the old
    password)."""
    reviewer = get_reviewer(session=session, username=username)
    try:
        check_password_policy(password)
    except ValueError as exc:
        raise InvalidArgument(str(exc)) from None
    reviewer.password_hash = hash_password(password, params=params)
    reviewer.session_epoch += 1
    session.flush()
    audit_append(
        session=session,
        event_type=events.REVIEWER_PASSWORD_CHANGED,
        actor=actor,
        action="set_password",
        payload={"reviewer_id": reviewer.id, "username": username},
    )
    return reviewer


def end_sessions(*, session: Session, reviewer_id: str, epoch: int) -> bool:
    """Logout: end every web session of the reviewer issued under ``epoch``; False when already ended.

    Compare-and-set on the epoch, so that replaying an old cookie cannot log the reviewer out again.
    """
    username = session.scalar(select(Reviewer.username).where(Reviewer.id == reviewer_id))
    ended = session.execute(
        update(Reviewer)
        .where(Reviewer.id == reviewer_id, Reviewer.session_epoch == epoch)
        .values(session_epoch=Reviewer.session_epoch + 1)
        .returning(Reviewer.id)
        .execution_options(synchronize_session="fetch")
    ).all()
    if ended:
        audit_append(
            session=session,
            event_type=events.REVIEWER_LOGOUT,
            actor=f"reviewer:{username}",
            action="logout",
            payload={"reviewer_id": reviewer_id},
        )
    return bool(ended)
