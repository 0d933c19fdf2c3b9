"""Word lists in the database (gateway/wordlists/store.py), the per-call variants built from them
(serving.py) and the rebuild of a recorded decision's lists (recorded.py); on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from gateway.audit import events
from gateway.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from gateway.policies.live import LiveModerator
from gateway.policies.store import latest_revision, seed
from gateway.policies.watcher import PolicyWatcher
from gateway.storage.models import AuditEvent
from gateway.wordlists import store
from gateway.wordlists.recorded import with_recorded_lists
from gateway.wordlists.serving import WordListRouter
from moderation.config import build_policies
from moderation.masking import Masker
from moderation.moderator import Moderator
from moderation.replay import compare_decisions, record_decision
from moderation.scorers.profanity import ProfanityScorer
from moderation.types import Action

TEXT = "the zorblax is here"  # "zorblax" is in no shipped list


def _seeded(db: sessionmaker[Session]) -> None:
    with db() as s, s.begin():
        seed(session=s, tables={"custom": {"extends": "default"}}, actor="config:seed")


def _base() -> Moderator:
    return Moderator(
        [ProfanityScorer()],
        build_policies({"custom": {"extends": "default"}}),
        default_policy="default",
        masker=Masker(),
    )


def _events(db: sessionmaker[Session], kind: str) -> list[AuditEvent]:
    with db() as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.event_type == kind)))


def test_versions_are_immutable_and_changes_bump_the_revision(db: sessionmaker[Session]) -> None:
    _seeded(db)
    with db() as s, s.begin():
        created = store.create_list(
            session=s, name="brand", words=["Zorblax  # a rival's name", "", "zorb*"], actor="cli:ann"
        )
        assert latest_revision(session=s) == 2
    assert created.snapshot.words == ("zorblax", "zorb*") and created.snapshot.version == 1
    with db() as s, s.begin():
        changed = store.change_entries(
            session=s, name="brand", remove_words=["zorb*"], add_allow=["zorblax fan club"], actor="cli:bob"
        )
    assert (changed.snapshot.version, changed.revision) == (2, 3)
    with db() as s:
        old = store.get_list(session=s, name="brand", version=1)
        assert old.snapshot.words == ("zorblax", "zorb*") and old.latest_version == 2
        assert [v.snapshot.version for v in store.history(session=s, name="brand")] == [1, 2]
    (event,) = _events(db, events.WORDLIST_CHANGED)
    assert event.actor == "cli:bob"
    assert event.payload == {
        "list_id": created.snapshot.list_id,
        "name": "brand",
        "owner": None,
        "version": 2,
        "revision": 3,
        "words": 1,
        "allow": 1,
        "added": 1,
        "removed": 1,
    }  # counts only: no entry in the audit log


def test_refusals_change_nothing(db: sessionmaker[Session]) -> None:
    _seeded(db)
    with db() as s, s.begin():
        store.create_list(session=s, name="brand", words=["zorblax"], actor="cli:ann")
        store.create_list(session=s, name="own", tenant="acme", words=["zorblax"], actor="cli:ann")
    cases = [
        (AlreadyExists, lambda s: store.create_list(session=s, name="brand", actor="a")),
        (InvalidArgument, lambda s: store.create_list(session=s, name=" x", actor="a")),
        (InvalidArgument, lambda s: store.create_list(session=s, name="x", words=["y" * 101], actor="a")),
        (NotFound, lambda s: store.change_entries(session=s, name="nope", add_words=["a"], actor="a")),
        (NotFound, lambda s: store.change_entries(session=s, name="brand", remove_words=["qq"], actor="a")),
        (
            FailedPrecondition,
            lambda s: store.change_entries(session=s, name="brand", add_words=["zorblax"], actor="a"),
        ),
        (
            NotFound,
            lambda s: store.attach(session=s, name="brand", target_kind="policy", target="nope", actor="a"),
        ),
        (
            InvalidArgument,
            lambda s: store.attach(session=s, name="brand", target_kind="team", target="x", actor="a"),
        ),
        (
            FailedPrecondition,
            lambda s: store.attach(
                session=s, name="own", tenant="acme", target_kind="tenant", target="other", actor="a"
            ),
        ),
        (
            FailedPrecondition,
            lambda s: store.detach(session=s, name="brand", target_kind="tenant", target="acme", actor="a"),
        ),
    ]
    with db() as s:
        before = latest_revision(session=s)
    for error, call in cases:
        with pytest.raises(error), db() as s, s.begin():
            call(s)
    with db() as s:
        assert latest_revision(session=s) == before


def test_served_lists_follow_attachments_and_versions_by_revision(db: sessionmaker[Session]) -> None:
    _seeded(db)
    with db() as s, s.begin():
        store.create_list(session=s, name="brand", words=["zorblax"], actor="a")
        at_one = store.attach(session=s, name="brand", target_kind="policy", target="custom", actor="a")
        store.create_list(session=s, name="own", tenant="acme", words=["quuxly"], actor="a")
        store.attach(session=s, name="own", tenant="acme", target_kind="tenant", target="acme", actor="a")
        store.change_entries(session=s, name="brand", add_words=["flimflam"], actor="a")
        store.detach(session=s, name="brand", target_kind="policy", target="custom", actor="a")
    with db() as s:
        then = store.served_lists(session=s, at_revision=at_one)
        now = store.served_lists(session=s)
    assert [(x.name, x.version) for x in then.by_policy["custom"]] == [("brand", 1)] and not then.by_tenant
    assert not now.by_policy and [(x.name, x.words) for x in now.by_tenant["acme"]] == [("own", ("quuxly",))]


def test_a_tenants_list_applies_to_its_calls_only(db: sessionmaker[Session]) -> None:
    _seeded(db)
    with db() as s, s.begin():
        store.create_list(session=s, name="own", tenant="acme", words=["zorblax"], actor="a")
        store.attach(session=s, name="own", tenant="acme", target_kind="tenant", target="acme", actor="a")
        store.create_list(session=s, name="ok", allow=["zorblax is here"], actor="a")
        store.attach(session=s, name="ok", target_kind="policy", target="custom", actor="a")
        served = store.served_lists(session=s)
    router = WordListRouter(_base(), served)
    (acme,) = router.for_call("acme", None).moderate([TEXT])
    (other,) = router.for_call("other", None).moderate([TEXT])
    (acme_custom,) = router.for_call("acme", "custom").moderate([TEXT])
    assert acme.action is Action.MASK and "zorblax" not in acme.text
    assert other.action is Action.RELEASE and other.text == TEXT
    assert acme_custom.action is Action.RELEASE  # the policy's allow entry exempts the tenant's word
    own_id = served.by_tenant["acme"][0].list_id
    assert acme.scorers[0].version.endswith(f"+lists-{own_id}.1")
    assert other.scorers[0].version == ProfanityScorer().version
    assert router.for_call("acme", None) is router.for_call("acme", "default")  # built once, not per call


def test_replicas_swap_on_a_list_change_and_replay_uses_the_recorded_version(
    db: sessionmaker[Session],
) -> None:
    _seeded(db)
    with db() as s, s.begin():
        store.create_list(session=s, name="own", tenant="acme", words=["zorblax"], actor="a")
        store.attach(session=s, name="own", tenant="acme", target_kind="tenant", target="acme", actor="a")
    live = LiveModerator(_base())
    watcher = PolicyWatcher(live, db)
    assert watcher.check()
    (before,) = live.for_call("acme", None).moderate([TEXT])
    assert before.action is Action.MASK
    with db() as s, s.begin():
        store.change_entries(session=s, name="own", tenant="acme", add_allow=["zorblax"], actor="a")
    assert watcher.check()
    (after,) = live.for_call("acme", None).moderate([TEXT])
    assert after.action is Action.RELEASE
    recorded = record_decision(before)
    notes: list[str] = []
    with db() as s:
        again = with_recorded_lists(
            session=s, base=live.current, recorded_scorers=recorded["scorers"], notes=notes
        )
    assert compare_decisions(recorded, again.moderate([TEXT])[0]) == []
    assert compare_decisions(recorded, after) != []  # the lists served now decide otherwise
    assert "own v1" in notes[0]
