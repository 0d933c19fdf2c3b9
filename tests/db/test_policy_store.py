"""Policies versioned in the database (gateway/policies/store.py): seed, set, activate, history, the
revision replicas watch, and the rules kept for replay; on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from gateway.api.v1 import policy_pb2 as pol_pb
from gateway.audit import events
from gateway.errors import FailedPrecondition, InvalidArgument, NotFound
from gateway.pipeline.callers import Caller, caller_var
from gateway.policies import store
from gateway.policies.startup import seed_once
from gateway.policies.store import (
    ConcurrentChange,
    activate,
    active_set,
    get_version,
    history,
    latest_revision,
    recorded_policy,
    seed,
    set_version,
)
from gateway.rpc.services.policy import PolicyServicer
from gateway.storage.models import AuditEvent
from moderation.config import ModerationConfigError, build_policies

SEEDED = {
    "custom": {"extends": "default", "thresholds": {"toxicity": {"hold": 0.4, "block": 0.9}}},
    "child": {"extends": "custom", "review_all": True},
}


def _seed(db: sessionmaker[Session]) -> int | None:
    with db() as s, s.begin():
        return seed(session=s, tables=SEEDED, actor="config:seed")


def _events(db: sessionmaker[Session], kind: str) -> list[AuditEvent]:
    with db() as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.event_type == kind)))


def test_seed_once_then_the_database_is_the_source(db: sessionmaker[Session]) -> None:
    with db() as s:
        assert latest_revision(session=s) == 0
    assert _seed(db) == 1
    with db() as s, s.begin():
        assert seed(session=s, tables={"other": {}}, actor="config:seed") is None
        served = active_set(session=s)
    assert served.revision == 1 and set(served.versions) == {"custom", "child"}
    policies = served.policies()
    assert policies["child"].thresholds["toxicity"].hold == 0.4  # extends resolved through custom
    assert policies["child"].review_all
    (event,) = _events(db, events.POLICY_SEEDED)
    assert event.actor == "config:seed" and event.payload["revision"] == 1


def test_set_stores_without_serving_and_activate_serves(db: sessionmaker[Session]) -> None:
    _seed(db)
    new = {"extends": "default", "thresholds": {"toxicity": {"hold": 0.2, "block": 0.5}}}
    with db() as s, s.begin():
        info = set_version(session=s, name="custom", table=new, actor="cli:ann")
    with db() as s:
        assert latest_revision(session=s) == 1  # stored, not served: replicas have nothing to do
        assert active_set(session=s).versions["custom"] != info.version
    with db() as s, s.begin():
        revision, activated = activate(session=s, version=info.version, actor="cli:bob")
    assert revision == 2 and activated.active
    with db() as s:
        served = active_set(session=s)
        assert served.versions["custom"] == info.version
        # The child follows its base's new version.
        assert served.policies()["child"].thresholds["toxicity"].hold == 0.2
        # The past stays readable: what was served at revision 1.
        assert active_set(session=s, at_revision=1).policies()["custom"].thresholds["toxicity"].hold == 0.4
        rows = {i.version: i for i in history(session=s, name="custom")}
    assert rows[info.version].active and rows[info.version].activated_by == "cli:bob"
    assert rows[info.version].created_by == "cli:ann"
    old = next(i for i in rows.values() if i.version != info.version)
    assert not old.active and old.activated_revision == 1
    (created,) = _events(db, events.POLICY_VERSION_CREATED)
    (activation,) = _events(db, events.POLICY_ACTIVATED)
    assert created.actor == "cli:ann" and created.payload["version"] == info.version
    assert activation.actor == "cli:bob"
    assert activation.payload == {
        "name": "custom",
        "version": info.version,
        "previous_version": old.version,
        "revision": 2,
        "rules_version": activation.payload["rules_version"],
    }


@pytest.mark.parametrize(
    "table",
    [
        {"thresholds": {"toxicity": {"hold": 1.5}}},
        {"extends": "nowhere"},
        {"threshold": {}},
        {"thresholds": {"toxicity": {"hold": 0.9, "block": 0.1}}},
    ],
)
def test_set_refuses_what_the_toml_file_refuses_with_the_same_words(
    db: sessionmaker[Session], table: dict[str, object]
) -> None:
    _seed(db)
    with pytest.raises(ModerationConfigError) as from_file:
        build_policies({**SEEDED, "custom": table})
    with db() as s, s.begin(), pytest.raises(InvalidArgument) as stored:
        set_version(session=s, name="custom", table=table, actor="cli:ann")
    assert str(stored.value) == str(from_file.value)
    with db() as s:
        assert len(history(session=s)) == 2  # nothing stored


def test_refusals(db: sessionmaker[Session]) -> None:
    _seed(db)
    with db() as s, s.begin(), pytest.raises(InvalidArgument, match="without dots"):
        set_version(session=s, name="a.b", table={}, actor="cli:ann")
    with db() as s, s.begin(), pytest.raises(NotFound, match="no policy version 99"):
        activate(session=s, version=99, actor="cli:ann")
    with db() as s, s.begin():
        served = active_set(session=s).versions["custom"]
    with db() as s, s.begin(), pytest.raises(FailedPrecondition, match="already the active version"):
        activate(session=s, version=served, actor="cli:ann")
    with db() as s, pytest.raises(NotFound):
        get_version(session=s, version=99)


def test_a_version_that_no_longer_fits_is_not_activated(db: sessionmaker[Session]) -> None:
    """A version is checked again on activation: `custom` extending `child` was valid when stored, but
    `child` was since made to extend `custom` (a cycle)."""
    _seed(db)

    def store(name: str, table: dict[str, object]) -> int:
        with db() as s, s.begin():
            return set_version(session=s, name=name, table=table, actor="cli:ann").version

    def serve(version: int) -> None:
        with db() as s, s.begin():
            activate(session=s, version=version, actor="cli:ann")

    serve(store("child", {}))
    loop = store("custom", {"extends": "child"})
    serve(store("child", {"extends": "custom"}))
    with db() as s:
        revision = latest_revision(session=s)
    with db() as s, s.begin(), pytest.raises(InvalidArgument, match="extends: unknown policy"):
        activate(session=s, version=loop, actor="cli:ann")
    with db() as s:
        assert latest_revision(session=s) == revision


def test_two_seeds_at_once_leave_one(db: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch) -> None:
    """Replicas starting together on an empty database: both read "never seeded", the second to commit
    fails on revision 1 (rolled back whole), and its start goes on with the first one's seed."""
    assert seed_once(db, SEEDED) == 1
    # The second replica read "not seeded" and the revision before the first committed:
    monkeypatch.setattr(store, "latest_revision", lambda *, session: 0)
    monkeypatch.setattr(store, "is_seeded", lambda *, session: False)
    with db() as s, s.begin(), pytest.raises(IntegrityError):
        seed(session=s, tables={"other": {}}, actor="config:seed")
    assert seed_once(db, {"other": {}}) is None
    monkeypatch.undo()
    with db() as s:
        assert latest_revision(session=s) == 1
        assert {i.name for i in history(session=s)} == {"custom", "child"}


def test_rules_of_every_served_version_are_kept_for_replay(db: sessionmaker[Session]) -> None:
    _seed(db)
    with db() as s:
        before = active_set(session=s).policies()["child"]
    with db() as s, s.begin():
        info = set_version(session=s, name="custom", table={"review_all": False}, actor="cli:ann")
        activate(session=s, version=info.version, actor="cli:ann")
    with db() as s:
        after = active_set(session=s).policies()["child"]
        assert after.version != before.version
        old = recorded_policy(session=s, name="child", version=before.version)
        assert recorded_policy(session=s, name="child", version="0" * 12) is None
    assert old is not None and old.version == before.version
    assert old.thresholds == before.thresholds and old.review_all == before.review_all


def test_an_empty_seed_marks_the_database_seeded_without_an_audit_event(db: sessionmaker[Session]) -> None:
    with db() as s, s.begin():
        assert seed(session=s, tables={}, actor="config:seed") == 1
    with db() as s, s.begin():
        assert seed(session=s, tables=SEEDED, actor="config:seed") is None  # the file is not read again
        assert active_set(session=s).versions == {}
    assert _events(db, events.POLICY_SEEDED) == []


def test_an_activation_racing_another_change_is_aborted_and_changes_nothing(
    db: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the PolicyService: a replica that read the revision before another change committed
    takes the same number; the collision is ABORTED (retry), not INTERNAL, and nothing is served."""
    _seed(db)
    new = {"extends": "default", "thresholds": {"toxicity": {"hold": 0.2, "block": 0.5}}}
    with db() as s, s.begin():
        info = set_version(session=s, name="custom", table=new, actor="cli:ann")
    monkeypatch.setattr(store, "latest_revision", lambda *, session: 0)

    async def activate_through_the_service() -> None:
        caller_var.set(Caller(tenant="ops", scopes=frozenset({"policy"}), key_id="k1"))
        await PolicyServicer(sessions=db).ActivatePolicyVersion(
            pol_pb.ActivatePolicyVersionRequest(version=info.version),
            None,  # type: ignore[arg-type]
        )

    with pytest.raises(ConcurrentChange) as raced:
        asyncio.run(activate_through_the_service())
    assert raced.value.grpc_status == "ABORTED" and "retry" in str(raced.value)
    monkeypatch.undo()
    with db() as s:
        assert latest_revision(session=s) == 1
        assert active_set(session=s).versions["custom"] != info.version
