"""Reviewer logins and session epochs on both backends: hashes upgraded at login, a password changed
mid-login, logout / password change / disabling moving the epoch, and the 0007 migration."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from gateway import audit
from gateway.commands.reviewers import reviewers_group
from gateway.review import (
    InvalidArgument,
    NotFound,
    create_reviewer,
    disable_reviewer,
    end_sessions,
    login_reviewer,
    set_password,
)
from gateway.review import logins as logins_module
from gateway.review.passwords import HashParams, verify_password
from gateway.storage import make_engine, migrate
from gateway.storage.models import Reviewer
from tests.db.test_cli import _clean_failure, _run
from tests.unit.gateway.test_passwords import legacy_scrypt_hash

PASSWORD = "correct horse battery"
CHEAP = HashParams(time_cost=1, memory_kib=8)


def _add(db: sessionmaker[Session], name: str = "alice", params: HashParams = CHEAP) -> Reviewer:
    with db() as s, s.begin():
        return create_reviewer(session=s, username=name, password=PASSWORD, params=params)


def _row(db: sessionmaker[Session], name: str = "alice") -> Reviewer:
    with db() as s:
        reviewer = s.query(Reviewer).filter_by(username=name).one()
        s.expunge(reviewer)
        return reviewer


def test_a_legacy_scrypt_hash_is_upgraded_at_the_next_login(
    db: sessionmaker[Session], exec_sql: Callable[..., None]
) -> None:
    _add(db)
    exec_sql("UPDATE reviewers SET password_hash = :h", h=legacy_scrypt_hash(PASSWORD))
    assert login_reviewer(db, username="alice", password="not the password") is None
    assert _row(db).password_hash.startswith("scrypt$"), "a failed login changes nothing"
    logged_in = login_reviewer(db, username="alice", password=PASSWORD)
    assert logged_in is not None and logged_in.username == "alice" and logged_in.session_epoch == 0
    upgraded = _row(db).password_hash
    assert upgraded.startswith("$argon2id$v=19$m=19456,t=2,p=1$") and verify_password(PASSWORD, upgraded)
    assert login_reviewer(db, username="alice", password=PASSWORD) is not None
    assert _row(db).password_hash == upgraded, "current hashes are left alone"


def test_the_configured_cost_applies_to_new_and_upgraded_hashes(db: sessionmaker[Session]) -> None:
    _add(db, params=CHEAP)
    assert "$m=8,t=1,p=1$" in _row(db).password_hash
    strong = HashParams(time_cost=2, memory_kib=64)
    assert login_reviewer(db, username="alice", password=PASSWORD, params=strong) is not None
    assert "$m=64,t=2,p=1$" in _row(db).password_hash


def test_a_password_changed_during_the_check_fails_the_login(
    db: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    _add(db)
    real = logins_module.verify_password

    def change_meanwhile(password: str, encoded: str) -> bool:
        with db() as s, s.begin():
            set_password(session=s, username="alice", password="a brand new password", params=CHEAP)
        return real(password, encoded)

    monkeypatch.setattr(logins_module, "verify_password", change_meanwhile)
    assert login_reviewer(db, username="alice", password=PASSWORD) is None
    with db() as s:
        [failed] = audit.query(session=s, event_type="reviewer.login_failed")
        assert failed.payload == {"reason": "bad password"}


def test_an_account_disabled_during_the_check_fails_the_login(
    db: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    _add(db)
    real = logins_module.verify_password

    def disable_meanwhile(password: str, encoded: str) -> bool:
        with db() as s, s.begin():
            disable_reviewer(session=s, username="alice")
        return real(password, encoded)

    monkeypatch.setattr(logins_module, "verify_password", disable_meanwhile)
    assert login_reviewer(db, username="alice", password=PASSWORD) is None
    with db() as s:
        [failed] = audit.query(session=s, event_type="reviewer.login_failed")
        assert failed.payload == {"reason": "disabled"}


def test_the_first_read_of_a_login_takes_no_write_lock(
    db: sessionmaker[Session], engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only recording the outcome writes. On SQLite the stored hash is read (and the password checked)
    while another connection holds the one write lock; on PostgreSQL that read is READ ONLY."""
    _add(db)
    read_only: list[str] = []
    real_read = logins_module._stored_hash

    def spy_read(session: Session, username: str) -> str | None:
        if engine.dialect.name == "postgresql":
            read_only.append(str(session.scalar(text("SHOW transaction_read_only"))))
        return real_read(session, username)

    checked = threading.Event()
    real_check = logins_module.verify_password

    def spy_check(password: str, encoded: str) -> bool:
        checked.set()
        return real_check(password, encoded)

    monkeypatch.setattr(logins_module, "_stored_hash", spy_read)
    monkeypatch.setattr(logins_module, "verify_password", spy_check)
    result: list[object] = []
    login = threading.Thread(
        target=lambda: result.append(login_reviewer(db, username="alice", password=PASSWORD)), daemon=True
    )
    with engine.connect() as writer:
        writer.exec_driver_sql("SELECT 1")  # on SQLite, BEGIN IMMEDIATE: this connection holds the lock
        login.start()
        assert checked.wait(10), "the login's read waited for the writer's lock"
        writer.rollback()
    login.join(30)
    assert result and result[0] is not None, "and it logs in once the writer is done"
    assert read_only == (["on"] if engine.dialect.name == "postgresql" else [])


def test_logout_password_change_and_disable_move_the_epoch(db: sessionmaker[Session]) -> None:
    reviewer = _add(db)
    assert _row(db).session_epoch == 0
    with db() as s, s.begin():
        assert end_sessions(session=s, reviewer_id=reviewer.id, epoch=0)
    with db() as s, s.begin():
        assert not end_sessions(session=s, reviewer_id=reviewer.id, epoch=0), "an old cookie ends nothing"
    assert _row(db).session_epoch == 1
    with db() as s, s.begin():
        set_password(session=s, username="alice", password="another password", actor="cli:ops", params=CHEAP)
    changed = _row(db)
    assert changed.session_epoch == 2 and verify_password("another password", changed.password_hash)
    with db() as s, s.begin():
        disable_reviewer(session=s, username="alice")
    assert _row(db).session_epoch == 3
    with db() as s:
        kinds = [e.event_type for e in audit.query(session=s, event_type="reviewer.")]
        assert kinds == [
            "reviewer.created",
            "reviewer.logout",
            "reviewer.password_changed",
            "reviewer.disabled",
        ]
        assert "another password" not in str([e.payload for e in audit.query(session=s)])


def test_set_password_refusals(db: sessionmaker[Session]) -> None:
    _add(db)
    with db() as s, s.begin(), pytest.raises(InvalidArgument, match="at least 8"):
        set_password(session=s, username="alice", password="short", params=CHEAP)
    with db() as s, s.begin(), pytest.raises(NotFound):
        set_password(session=s, username="nobody", password="long enough!", params=CHEAP)
    assert _row(db).session_epoch == 0


def test_migration_0007_gives_existing_reviewers_epoch_zero(empty_db_url: str) -> None:
    migrate.upgrade(empty_db_url, "0006")
    engine = make_engine(empty_db_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO reviewers (id, username, password_hash, role, disabled, created_at) "
                    "VALUES ('r-1', 'old', 'scrypt$x', 'reviewer', false, CURRENT_TIMESTAMP)"
                )
            )
        migrate.upgrade(empty_db_url, "0007")
        with engine.connect() as conn:
            assert conn.execute(text("SELECT session_epoch FROM reviewers")).scalar_one() == 0
        migrate.downgrade(empty_db_url, "0006")
        with engine.connect() as conn:
            assert conn.execute(text("SELECT username FROM reviewers")).scalar_one() == "old"
        migrate.upgrade(empty_db_url, "head")
    finally:
        engine.dispose()


def test_cli_set_password_ends_sessions_and_follows_the_cost_settings(
    db_url: str, db: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODGATE_PASSWORD_HASH_TIME_COST", "1")
    monkeypatch.setenv("MODGATE_PASSWORD_HASH_MEMORY_KIB", "16")
    added = _run(reviewers_group, db_url, "add", "alice", "--password-stdin", input=PASSWORD + "\n")
    assert added.exit_code == 0, added.output
    assert "$m=16,t=1,p=1$" in _row(db).password_hash
    changed = _run(reviewers_group, db_url, "set-password", "alice", input="new password!\nnew password!\n")
    assert changed.exit_code == 0 and "web sessions have ended" in changed.stdout
    row = _row(db)
    assert row.session_epoch == 1 and verify_password("new password!", row.password_hash)
    assert "at least 8" in _clean_failure(
        _run(reviewers_group, db_url, "set-password", "alice", "--password-stdin", input="short\n")
    )
    assert "no reviewer" in _clean_failure(
        _run(reviewers_group, db_url, "set-password", "bob", "--password-stdin", input=PASSWORD + "\n")
    )
    monkeypatch.setenv("MODGATE_PASSWORD_HASH_MEMORY_KIB", "4")
    bad = _run(reviewers_group, db_url, "set-password", "alice", "--password-stdin", input=PASSWORD + "\n")
    assert "password_hash_memory_kib" in _clean_failure(bad, code=2)
    assert _row(db).session_epoch == 1
