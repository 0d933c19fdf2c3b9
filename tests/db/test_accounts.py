"""API keys and reviewer accounts: secrets never stored, constant-time checks, revocation, audit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from gateway import audit
from gateway.review import (
    AlreadyExists,
    InvalidArgument,
    NotFound,
    create_reviewer,
    disable_reviewer,
    list_reviewers,
    login_reviewer,
)
from gateway.storage.apikeys import authenticate_key, create_key, hash_secret, list_keys, revoke_key
from gateway.storage.models import ApiKey, Reviewer, ReviewerRole

T0 = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)
PASSWORD = "correct horse battery"


def _new_key(db: sessionmaker[Session], **kwargs: object) -> tuple[ApiKey, str]:
    kwargs = {"tenant": "acme", "name": "batch", "scopes": ["generate", "audit"], **kwargs}
    with db() as s, s.begin():
        return create_key(session=s, **kwargs)  # type: ignore[arg-type]


def _auth(db: sessionmaker[Session], secret: str, now: datetime = T0) -> ApiKey | None:
    with db() as s, s.begin():
        return authenticate_key(session=s, secret=secret, now=now)


def test_create_key_stores_only_a_hash(db: sessionmaker[Session]) -> None:
    key, secret = _new_key(db, policy="strict")
    assert secret.startswith(f"mg_{key.key_prefix}_") and len(secret) == 3 + 9 + 43
    with db() as s:
        row = s.get(ApiKey, key.id)
        assert row is not None
        assert row.key_hash == hash_secret(secret) != secret
        assert secret not in repr(vars(row))
        assert row.scopes == ["audit", "generate"] and row.policy == "strict"
    with db() as s:
        [event] = audit.query(session=s, event_type="key.created")
        assert secret not in audit.canonical_json(event.payload) and event.tenant == "acme"


def test_authenticate_key(db: sessionmaker[Session]) -> None:
    key, secret = _new_key(db)
    other, _ = _new_key(db)
    found = _auth(db, secret)
    assert found is not None and found.id == key.id and found.tenant == "acme"
    assert found.last_used_at == T0
    tampered = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    borrowed_prefix = secret.replace(key.key_prefix, other.key_prefix)
    for bad in (
        tampered,
        borrowed_prefix,
        "",
        "mg_",
        "Bearer " + secret,
        secret + "x",
        "mg_zzzzzzzz_" + "a" * 43,
    ):
        assert _auth(db, bad) is None, bad


def test_last_used_is_throttled(db: sessionmaker[Session]) -> None:
    _, secret = _new_key(db)
    _auth(db, secret, T0)
    again = _auth(db, secret, T0 + timedelta(seconds=30))
    assert again is not None and again.last_used_at == T0  # no write for every request
    later = _auth(db, secret, T0 + timedelta(seconds=61))
    assert later is not None and later.last_used_at == T0 + timedelta(seconds=61)


def test_revoke_key(db: sessionmaker[Session]) -> None:
    key, secret = _new_key(db)
    with db() as s, s.begin():
        revoked = revoke_key(session=s, key_id=key.key_prefix, now=T0)  # by prefix works too
    assert revoked.revoked_at == T0
    assert _auth(db, secret) is None
    with db() as s, s.begin():
        again = revoke_key(session=s, key_id=key.id, now=T0 + timedelta(hours=1))
    assert again.revoked_at == T0
    with db() as s, s.begin(), pytest.raises(NotFound):
        revoke_key(session=s, key_id="nope")
    with db() as s:
        assert len(audit.query(session=s, event_type="key.revoked")) == 1
        assert [k.id for k in list_keys(session=s, include_revoked=False)] == []
        assert [k.id for k in list_keys(session=s, tenant="acme")] == [key.id]


@pytest.mark.parametrize(
    "bad",
    [
        {"scopes": ["Generate"]},
        {"scopes": ["a b"]},
        {"scopes": ["generate\n"]},
        {"scopes": ["results:read"]},  # not a scope modgate knows
        {"tenant": ""},
        {"name": "x\n"},
        {"policy": ""},
    ],
)
def test_create_key_validates(db: sessionmaker[Session], bad: dict[str, object]) -> None:
    with pytest.raises(InvalidArgument):
        _new_key(db, **bad)


def test_create_and_authenticate_reviewer(db: sessionmaker[Session]) -> None:
    with db() as s, s.begin():
        created = create_reviewer(session=s, username="alice", password=PASSWORD, role="admin")
    assert created.role == ReviewerRole.ADMIN and created.is_admin
    assert created.password_hash.startswith("$argon2id$") and PASSWORD not in created.password_hash
    assert login_reviewer(db, username="alice", password=PASSWORD) is not None
    assert login_reviewer(db, username="alice", password=PASSWORD + "!") is None
    assert login_reviewer(db, username="mallory", password=PASSWORD) is None
    with db() as s:
        logins = audit.query(session=s, event_type="reviewer.")
        kinds = [(e.event_type, e.payload.get("reason")) for e in logins]
        assert kinds == [
            ("reviewer.created", None),
            ("reviewer.login", None),
            ("reviewer.login_failed", "bad password"),
            ("reviewer.login_failed", "unknown user"),
        ]
        assert PASSWORD not in " ".join(audit.canonical_json(e.payload) for e in logins)


def test_disabled_reviewer_cannot_log_in(db: sessionmaker[Session]) -> None:
    with db() as s, s.begin():
        create_reviewer(session=s, username="bob", password=PASSWORD)
        disable_reviewer(session=s, username="bob")
    assert login_reviewer(db, username="bob", password=PASSWORD) is None
    with db() as s:
        [bob] = list_reviewers(session=s)
        assert bob.disabled
    with db() as s, s.begin(), pytest.raises(NotFound):
        disable_reviewer(session=s, username="nobody")


def test_reviewer_validation(db: sessionmaker[Session]) -> None:
    with db() as s, s.begin():
        create_reviewer(session=s, username="carol", password=PASSWORD)
    for kwargs, error in (
        ({"username": "carol"}, AlreadyExists),
        ({"username": "bad name"}, InvalidArgument),
        ({"username": ""}, InvalidArgument),
        ({"username": "erin\n"}, InvalidArgument),
        ({"username": "dave", "password": "short"}, InvalidArgument),
        ({"username": "dave", "role": "superuser"}, InvalidArgument),
    ):
        with db() as s, s.begin(), pytest.raises(error):
            create_reviewer(session=s, **{"password": PASSWORD, **kwargs})  # type: ignore[arg-type]
    with db() as s:
        assert s.scalars(select(Reviewer.username)).all() == ["carol"]


def test_review_scope_binds_the_key_to_a_reviewer(db: sessionmaker[Session]) -> None:
    with db() as s, s.begin():
        reviewer = create_reviewer(session=s, username="rita", password=PASSWORD)
        create_reviewer(session=s, username="gone", password=PASSWORD)
        disable_reviewer(session=s, username="gone")
    key, secret = _new_key(db, scopes=["review"], reviewer="rita")
    assert key.reviewer_id == reviewer.id
    found = _auth(db, secret)
    assert found is not None and found.reviewer_id == reviewer.id
    for bad in (
        {"scopes": ["review"]},  # a review key must act as an accountable person
        {"scopes": ["review"], "reviewer": "nobody"},
        {"scopes": ["review"], "reviewer": "gone"},
        {"scopes": ["generate"], "reviewer": "rita"},
    ):
        with pytest.raises(InvalidArgument):
            _new_key(db, **bad)
