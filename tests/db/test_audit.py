"""Audit log: chain construction, tamper detection (edit, delete, reorder, truncate), queries."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from gateway import audit
from gateway.audit import GENESIS_HASH, canonical_json, compute_hash
from gateway.audit.chain import event_fields
from gateway.storage.models import AuditEvent
from tests.support.audit_tamper import tampering

T0 = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)
ExecSql = Callable[..., None]


def _fill(db: sessionmaker[Session], n: int = 5) -> list[AuditEvent]:
    events = []
    with db() as s, s.begin():
        for i in range(n):
            events.append(
                audit.append(
                    session=s,
                    event_type="request.received" if i % 2 == 0 else "review.claimed",
                    actor=f"actor-{i % 3}",
                    tenant="acme" if i < 3 else "globex",
                    request_id=f"req-{i}",
                    ticket=f"tkt-{i}" if i % 2 else None,
                    action="hold" if i == 4 else None,
                    payload={"i": i, "nested": {"b": [1, 2.5, None], "a": "é"}},
                    now=T0 + timedelta(minutes=i),
                )
            )
    return events


@contextmanager
def _tampered(engine: Engine) -> Iterator[Session]:
    """An ORM session in which audit rows can be changed (the append-only triggers suspended)."""
    with tampering(engine) as conn, Session(bind=conn) as s:
        yield s
        s.flush()


def _verify(db: sessionmaker[Session], **kwargs: object) -> audit.VerifyResult:
    with db() as s:
        return audit.verify(session=s, **kwargs)  # type: ignore[arg-type]


def test_chain_links_and_verifies(db: sessionmaker[Session]) -> None:
    events = _fill(db)
    assert [e.id for e in events] == [1, 2, 3, 4, 5]
    assert events[0].prev_hash == GENESIS_HASH
    for prev, event in itertools.pairwise(events):
        assert event.prev_hash == prev.hash
    with db() as s:
        stored = list(s.scalars(select(AuditEvent).order_by(AuditEvent.id)))
    for row in stored:  # re-read from the database, the hash still matches: storage is lossless
        assert row.hash == compute_hash(row.prev_hash, event_fields(row))
        assert row.created_at.tzinfo is not None
    result = _verify(db)
    assert result == audit.VerifyResult(True, 5, None, None, 5, events[-1].hash)


def test_empty_log_verifies(db: sessionmaker[Session]) -> None:
    assert _verify(db) == audit.VerifyResult(True, 0)


def test_hash_is_sha256_of_prev_hash_and_canonical_fields(db: sessionmaker[Session]) -> None:
    import hashlib

    [event] = _fill(db, 1)
    fields = event_fields(event)
    assert fields["id"] == 1 and fields["payload"]["nested"]["a"] == "é"
    expected = hashlib.sha256((GENESIS_HASH + canonical_json(fields)).encode()).hexdigest()
    assert event.hash == expected


def test_numbers_survive_storage_exactly(db: sessionmaker[Session]) -> None:
    """JSONB would turn 1e16 into an integer and break the hash: the payload column must keep it."""
    with db() as s, s.begin():
        audit.append(
            session=s, event_type="moderation.decided", actor="gw", payload={"a": 1e16, "b": 0.1, "c": 10**20}
        )
    result = _verify(db)
    assert result.ok, result


def test_append_validates(db: sessionmaker[Session]) -> None:
    with db() as s, s.begin():
        with pytest.raises(ValueError):
            audit.append(session=s, event_type="Not A Type", actor="x")
        with pytest.raises(ValueError):
            audit.append(session=s, event_type="request.received", actor="")
        with pytest.raises(TypeError):
            audit.append(session=s, event_type="request.received", actor="x", payload=[1, 2])  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            audit.append(session=s, event_type="request.received", actor="x", payload={"nan": float("nan")})
        with pytest.raises(TypeError):
            audit.append(session=s, event_type="request.received", actor="x", payload={"when": T0})
        event = audit.append(session=s, event_type="request.received", actor="x", payload={"t": (1, 2)})
        assert event.payload == {"t": [1, 2]}  # stored exactly as hashed


def test_edited_payload_is_named(db: sessionmaker[Session], exec_sql: ExecSql) -> None:
    _fill(db)
    exec_sql("UPDATE audit_events SET payload = :p WHERE id = 3", p='{"i": 99}')
    result = _verify(db)
    assert not result.ok and result.first_bad_id == 3 and "edited" in (result.problem or "")
    assert result.checked == 2


@pytest.mark.parametrize("column", ["actor", "tenant", "event_type", "ticket"])
def test_edited_column_is_named(db: sessionmaker[Session], exec_sql: ExecSql, column: str) -> None:
    _fill(db)
    exec_sql(f"UPDATE audit_events SET {column} = 'forged' WHERE id = 4")
    assert _verify(db).first_bad_id == 4


def test_edited_timestamp_is_named(db: sessionmaker[Session], engine: Engine) -> None:
    _fill(db)
    with _tampered(engine) as s:
        row = s.get(AuditEvent, 2)
        assert row is not None
        row.created_at = row.created_at + timedelta(seconds=1)
    assert _verify(db).first_bad_id == 2


def test_deleted_row_is_named(db: sessionmaker[Session], exec_sql: ExecSql) -> None:
    _fill(db)
    exec_sql("DELETE FROM audit_events WHERE id = 3")
    result = _verify(db)
    assert not result.ok and result.first_bad_id == 3 and "missing" in (result.problem or "")


def test_deleted_first_row_is_named(db: sessionmaker[Session], exec_sql: ExecSql) -> None:
    _fill(db)
    exec_sql("DELETE FROM audit_events WHERE id = 1")
    assert _verify(db).first_bad_id == 1


def test_deleted_and_renumbered_rows_are_named(db: sessionmaker[Session], exec_sql: ExecSql) -> None:
    """Closing the gap by renumbering does not hide the deletion: the link breaks."""
    _fill(db)
    exec_sql("DELETE FROM audit_events WHERE id = 3")
    exec_sql("UPDATE audit_events SET id = 3 WHERE id = 4")
    exec_sql("UPDATE audit_events SET id = 4 WHERE id = 5")
    result = _verify(db)
    assert not result.ok and result.first_bad_id == 3


def test_swapped_rows_are_named(db: sessionmaker[Session], exec_sql: ExecSql) -> None:
    _fill(db)
    exec_sql("UPDATE audit_events SET id = 1000 WHERE id = 2")
    exec_sql("UPDATE audit_events SET id = 2 WHERE id = 4")
    exec_sql("UPDATE audit_events SET id = 4 WHERE id = 1000")
    result = _verify(db)
    assert not result.ok and result.first_bad_id == 2


def test_rehashed_edit_breaks_the_next_link(db: sessionmaker[Session], engine: Engine) -> None:
    """An attacker who edits row 3 and recomputes its hash is caught at row 4."""
    _fill(db)
    with _tampered(engine) as s:
        row = s.get(AuditEvent, 3)
        assert row is not None
        row.payload = {"i": "forged"}
        s.flush()
        row.hash = compute_hash(row.prev_hash, event_fields(row))
    result = _verify(db)
    assert not result.ok and result.first_bad_id == 4 and "link" in (result.problem or "")


def test_truncation_needs_an_anchor(db: sessionmaker[Session], exec_sql: ExecSql) -> None:
    events = _fill(db)
    anchor = (events[-1].id, events[-1].hash)
    assert _verify(db, anchor=anchor).ok
    exec_sql("DELETE FROM audit_events WHERE id = 5")
    assert _verify(db).ok  # the documented limit of a bare chain
    result = _verify(db, anchor=anchor)
    assert not result.ok and result.first_bad_id == 5 and "truncated" in (result.problem or "")
    wrong = _verify(db, anchor=(2, "f" * 64))
    assert not wrong.ok and wrong.first_bad_id == 2


def _rewrite_from(engine: Engine, first: int, count: int) -> None:
    """Replace rows ``first``.. with ``count`` new ones, hashes recomputed: a self-consistent chain."""
    with _tampered(engine) as s:
        s.execute(text("DELETE FROM audit_events WHERE id >= :first"), {"first": first})
        for i in range(count):
            audit.append(session=s, event_type="key.created", actor="intruder", payload={"i": i})


def test_a_rewritten_tail_verifies_alone_but_not_against_an_anchor(
    db: sessionmaker[Session], engine: Engine
) -> None:
    events = _fill(db)
    anchor = (events[3].id, events[3].hash)
    _rewrite_from(engine, 3, 4)
    assert _verify(db).ok  # the documented limit of a bare chain
    result = _verify(db, anchor=anchor)
    assert not result.ok and result.first_bad_id == 4
    assert "rewritten at or before row 4" in (result.problem or "")


@pytest.mark.parametrize("bad_id", [0, -7])
def test_rows_at_id_zero_or_below_are_checked_not_skipped(
    db: sessionmaker[Session], exec_sql: ExecSql, bad_id: int
) -> None:
    """A row slipped in below the chain's first id was never read by the walk (ids > 0): now refused."""
    _fill(db, 3)
    exec_sql(
        "INSERT INTO audit_events (id, created_at, event_type, actor, payload, prev_hash, hash) "
        "VALUES (:id, :at, 'key.created', 'intruder', '{}', :prev, :hash)",
        id=bad_id,
        at=T0,
        prev=GENESIS_HASH,
        hash="e" * 64,
    )
    result = _verify(db)
    assert not result.ok and result.first_bad_id == bad_id
    assert "not part of the chain" in (result.problem or "")
    assert result.checked == 0


def test_verify_from_checks_only_what_follows_the_anchor(
    db: sessionmaker[Session], engine: Engine, exec_sql: ExecSql
) -> None:
    events = _fill(db, 6)
    with db() as s:
        unchanged = audit.verify_from(session=s, anchor=(6, events[5].hash))
        grown = audit.verify_from(session=s, anchor=(4, events[3].hash), batch_size=1)
    assert unchanged == audit.VerifyResult(True, 1, None, None, 6, events[5].hash)
    assert grown == audit.VerifyResult(True, 3, None, None, 6, events[5].hash)

    exec_sql("UPDATE audit_events SET actor = 'x' WHERE id = 5")
    with db() as s:
        edited = audit.verify_from(session=s, anchor=(4, events[3].hash))
        before = audit.verify_from(session=s, anchor=(6, events[5].hash))
    assert not edited.ok and edited.first_bad_id == 5 and "edited" in (edited.problem or "")
    assert before.ok  # an edit below the anchor is the whole walk's job

    _rewrite_from(engine, 3, 5)
    with db() as s:
        rewritten = audit.verify_from(session=s, anchor=(4, events[3].hash))
    assert not rewritten.ok and rewritten.first_bad_id == 4 and "rewritten" in (rewritten.problem or "")
    exec_sql("DELETE FROM audit_events WHERE id >= 4")
    with db() as s:
        truncated = audit.verify_from(session=s, anchor=(4, events[3].hash))
    assert not truncated.ok and truncated.first_bad_id == 4 and "truncated" in (truncated.problem or "")


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_events SET actor = 'forged' WHERE id = 2",
        "DELETE FROM audit_events WHERE id = 3",
        "DELETE FROM audit_events",
    ],
)
def test_the_database_refuses_to_change_audit_rows(
    db: sessionmaker[Session], engine: Engine, statement: str
) -> None:
    """Migration 0008's triggers: the application's own connections cannot update or delete events."""
    events = _fill(db, 3)
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
        conn.execute(text(statement))
    assert _verify(db) == audit.VerifyResult(True, 3, None, None, 3, events[-1].hash)


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_postgresql_refuses_truncate_too(db: sessionmaker[Session], engine: Engine) -> None:
    _fill(db, 2)
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
        conn.execute(text("TRUNCATE audit_events"))
    assert _verify(db).checked == 2


def test_verify_pages_through_long_logs(db: sessionmaker[Session], exec_sql: ExecSql) -> None:
    _fill(db, 7)
    assert _verify(db, batch_size=2).checked == 7
    exec_sql("UPDATE audit_events SET actor = 'x' WHERE id = 6")
    assert _verify(db, batch_size=2).first_bad_id == 6


def _ids(events: list[AuditEvent]) -> list[int]:
    return [e.id for e in events]


def test_query_filters(db: sessionmaker[Session]) -> None:
    _fill(db)
    with db() as s:
        assert _ids(audit.query(session=s)) == [1, 2, 3, 4, 5]
        assert _ids(audit.query(session=s, tenant="globex")) == [4, 5]
        assert _ids(audit.query(session=s, request_id="req-2")) == [3]
        assert _ids(audit.query(session=s, ticket="tkt-3")) == [4]
        assert _ids(audit.query(session=s, actor="actor-0")) == [1, 4]
        assert _ids(audit.query(session=s, event_type="review.claimed")) == [2, 4]
        assert _ids(audit.query(session=s, event_type="review.*")) == [2, 4]
        assert _ids(audit.query(session=s, event_type="request.")) == [1, 3, 5]
        assert _ids(audit.query(session=s, action="hold")) == [5]
        assert _ids(audit.query(session=s, since=T0 + timedelta(minutes=1))) == [2, 3, 4, 5]
        assert _ids(audit.query(session=s, until=T0 + timedelta(minutes=2))) == [1, 2]
        window = audit.query(session=s, since=T0 + timedelta(minutes=1), until=T0 + timedelta(minutes=3))
        assert _ids(window) == [2, 3]
        assert _ids(audit.query(session=s, tenant="acme", event_type="request.received")) == [1, 3]
        assert audit.query(session=s, tenant="nobody") == []
        # Other time zones mean the same instant.
        plus2 = T0.astimezone(timezone(timedelta(hours=2)))
        assert _ids(audit.query(session=s, since=plus2 + timedelta(minutes=4))) == [5]


def test_query_keyset_pagination(db: sessionmaker[Session]) -> None:
    _fill(db, 7)
    pages, after = [], None
    with db() as s:
        while page := audit.query(session=s, after_id=after, limit=3):
            pages.append(_ids(page))
            after = page[-1].id
    assert pages == [[1, 2, 3], [4, 5, 6], [7]]


def test_query_validates(db: sessionmaker[Session]) -> None:
    with db() as s:
        for bad in ({"limit": 0}, {"limit": 1001}, {"since": datetime(2030, 1, 1)}):
            with pytest.raises(ValueError):
                audit.query(session=s, **bad)  # type: ignore[arg-type]
