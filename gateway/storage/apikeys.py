"""Client API keys: create (secret shown once), authenticate, list, revoke.

A secret looks like ``mg_<prefix>_<random>``: ``prefix`` is 8 hex characters, stored in clear and
unique, used to find the row and to tell keys apart in listings; ``random`` is 256 bits. Only
``sha256(secret)`` is stored (see :class:`gateway.storage.models.ApiKey` for why a fast hash is right
for random keys) and compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.audit import append as audit_append
from gateway.audit import events
from gateway.errors import InvalidArgument, NotFound
from gateway.storage.base import utcnow
from gateway.storage.models import ApiKey, Reviewer

SECRET_PREFIX = "mg"
# last_used_at is written at most this often per key: not a database write on every request.
TOUCH_INTERVAL = timedelta(seconds=60)
# What a key may be granted. `audit` reads the key's own tenant's audit events; `audit:all` (an
# operator's scope, granted only when named) reads every tenant's and verifies the whole chain.
SCOPES = ("generate", "review", "audit", "audit:all", "policy")
_NAME = re.compile(r"^[^\x00-\x1f\x7f]{1,128}$")
_SECRET = re.compile(r"^mg_([0-9a-f]{8})_([A-Za-z0-9_-]{43})$")
_DUMMY_HASH = "0" * 64


def hash_secret(secret: str) -> str:
    """sha256 of the whole secret, lowercase hex."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _new_secret(session: Session) -> tuple[str, str]:
    for _ in range(10):
        prefix = secrets.token_hex(4)
        if session.scalar(select(ApiKey.id).where(ApiKey.key_prefix == prefix)) is None:
            return prefix, f"{SECRET_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    raise RuntimeError("could not find a free key prefix")  # 2**32 prefixes: practically unreachable


def create_key(
    *,
    session: Session,
    tenant: str,
    name: str,
    scopes: Iterable[str] = (),
    policy: str | None = None,
    reviewer: str | None = None,
    requests_per_minute: int | None = None,
    tokens_per_minute: int | None = None,
    actor: str = "system",
) -> tuple[ApiKey, str]:
    """Create a key for ``tenant``; returns the row and the secret, which is never retrievable again.

    ``reviewer`` (a username) binds the key to a reviewer account: required with the ``review`` scope,
    because claims and decisions are made by an accountable person (and their role decides access to
    escalated items), refused without it.
    """
    scopes = sorted(set(scopes))
    if not tenant or not _NAME.fullmatch(tenant):
        raise InvalidArgument("tenant must be 1-128 printable characters")
    if not _NAME.fullmatch(name):
        raise InvalidArgument("name must be 1-128 printable characters")
    bad = [s for s in scopes if s not in SCOPES]
    if bad:
        raise InvalidArgument(f"unknown scope(s) {bad}: choose from {', '.join(SCOPES)}")
    if policy is not None and not _NAME.fullmatch(policy):
        raise InvalidArgument("policy must be 1-128 printable characters")
    for label, limit in (
        ("requests_per_minute", requests_per_minute),
        ("tokens_per_minute", tokens_per_minute),
    ):
        if limit is not None and limit < 0:
            raise InvalidArgument(f"{label} must be 0 (unlimited) or more, got {limit}")
    reviewer_id = None
    if "review" in scopes:
        if not reviewer:
            raise InvalidArgument("a key with the 'review' scope must name the reviewer account it acts as")
        account = session.scalars(select(Reviewer).where(Reviewer.username == reviewer)).one_or_none()
        if account is None or account.disabled:
            raise InvalidArgument(f"no active reviewer {reviewer!r}")
        reviewer_id = account.id
    elif reviewer:
        raise InvalidArgument("--reviewer goes with the 'review' scope")
    prefix, secret = _new_secret(session)
    key = ApiKey(
        tenant=tenant,
        name=name,
        key_prefix=prefix,
        key_hash=hash_secret(secret),
        scopes=scopes,
        policy=policy,
        reviewer_id=reviewer_id,
        requests_per_minute=requests_per_minute,
        tokens_per_minute=tokens_per_minute,
    )
    session.add(key)
    session.flush()
    audit_append(
        session=session,
        event_type=events.KEY_CREATED,
        actor=actor,
        tenant=tenant,
        action="create",
        payload={
            "key_id": key.id,
            "key_prefix": prefix,
            "name": name,
            "scopes": scopes,
            "policy": policy,
            "reviewer": reviewer,
            "requests_per_minute": requests_per_minute,
            "tokens_per_minute": tokens_per_minute,
        },
    )
    return key, secret


def authenticate_key(*, session: Session, secret: str, now: datetime | None = None) -> ApiKey | None:
    """The live key whose secret this is, else None (malformed, unknown, wrong or revoked).

    The hash comparison is constant-time and also runs for unknown prefixes. Updates ``last_used_at``
    at most once per :data:`TOUCH_INTERVAL` (the caller commits).
    """
    match = _SECRET.fullmatch(secret)
    key = None
    if match is not None:
        key = session.scalars(select(ApiKey).where(ApiKey.key_prefix == match.group(1))).one_or_none()
    valid = hmac.compare_digest(hash_secret(secret), key.key_hash if key is not None else _DUMMY_HASH)
    if key is None or not valid or key.revoked_at is not None:
        return None
    now = now or utcnow()
    if key.last_used_at is None or now - key.last_used_at >= TOUCH_INTERVAL:
        key.last_used_at = now
    return key


def get_key(*, session: Session, key_id: str) -> ApiKey:
    """A key by id (or by its public prefix), else NotFound."""
    key = (
        session.get(ApiKey, key_id)
        or session.scalars(select(ApiKey).where(ApiKey.key_prefix == key_id)).one_or_none()
    )
    if key is None:
        raise NotFound(f"no API key {key_id!r}")
    return key


def list_keys(*, session: Session, tenant: str | None = None, include_revoked: bool = True) -> list[ApiKey]:
    """Keys, oldest first; never the secrets (they are not stored)."""
    stmt = select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)
    if tenant is not None:
        stmt = stmt.where(ApiKey.tenant == tenant)
    if not include_revoked:
        stmt = stmt.where(ApiKey.revoked_at.is_(None))
    return list(session.scalars(stmt))


def revoke_key(
    *, session: Session, key_id: str, actor: str = "system", now: datetime | None = None
) -> ApiKey:
    """Revoke a key (by id or prefix) from now on; revoking twice keeps the first time."""
    key = get_key(session=session, key_id=key_id)
    if key.revoked_at is None:
        key.revoked_at = now or utcnow()
        session.flush()
        audit_append(
            session=session,
            event_type=events.KEY_REVOKED,
            actor=actor,
            tenant=key.tenant,
            action="revoke",
            payload={"key_id": key.id, "key_prefix": key.key_prefix},
        )
    return key
