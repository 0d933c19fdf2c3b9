"""The revision check every replica runs (gateway/policies/watcher.py) and the start-up seed
(startup.py): a change is picked up and swapped whole, a broken stored revision never replaces the
serving moderator (logged and counted), and the config file's differences are reported at start."""

from __future__ import annotations

import asyncio
import logging

import pytest
from prometheus_client import REGISTRY
from sqlalchemy.orm import Session, sessionmaker

from gateway.policies.live import LiveModerator, LivePolicies
from gateway.policies.startup import stored_moderator
from gateway.policies.store import activate, set_version
from gateway.policies.watcher import PolicyWatcher
from gateway.storage.policy_models import ModerationRevision, PolicyActivation, PolicyVersion
from moderation.config import build_policies
from moderation.masking import Masker
from moderation.moderator import Moderator
from moderation.policy import PRESETS
from moderation.testing import KeywordScorer
from moderation.types import Action

TABLES = {"custom": {"extends": "default", "description": "seeded"}}


def _base() -> Moderator:
    return Moderator(
        [KeywordScorer({"toxicity": ["idiot"]}, name="kw")],
        build_policies(TABLES),
        default_policy="default",
        masker=Masker(),
    )


def _failures() -> float:
    return REGISTRY.get_sample_value("modgate_policy_reload_failures_total") or 0.0


def _store_and_activate(db: sessionmaker[Session], table: dict[str, object]) -> None:
    with db() as s, s.begin():
        info = set_version(session=s, name="custom", table=table, actor="cli:ann")
        activate(session=s, version=info.version, actor="cli:ann")


def test_a_change_is_picked_up_and_swapped_whole(db: sessionmaker[Session]) -> None:
    live = stored_moderator(_base(), db, TABLES)
    assert live.revision == 1
    watcher = PolicyWatcher(live, db)
    assert not watcher.check()  # nothing moved: one read, no rebuild
    before = live.current
    policies = LivePolicies(live)
    assert not policies["custom"].review_all
    _store_and_activate(db, {"extends": "default", "review_all": True})
    assert watcher.check()
    assert live.revision == 2 and live.current is not before
    assert policies["custom"].review_all  # the web pages' view follows
    (held,) = live.current.moderate(["a nice day"], policy="custom")
    (released,) = before.moderate(["a nice day"], policy="custom")  # a call in flight keeps its rules
    assert held.action is Action.HOLD and released.action is Action.RELEASE
    assert live.current.scorers_info == before.scorers_info


def test_a_broken_stored_revision_keeps_the_serving_moderator(
    db: sessionmaker[Session], caplog: pytest.LogCaptureFixture
) -> None:
    live = stored_moderator(_base(), db, TABLES)
    serving = live.current
    # Rows written around the store's checks (a bug, a hand edit): a policy extending nothing known.
    with db() as s, s.begin():
        bad = PolicyVersion(name="custom", body={"extends": "gone"}, created_by="psql")
        s.add(bad)
        s.add(ModerationRevision(id=2, kind="activate", actor="psql"))
        s.flush()
        s.add(PolicyActivation(revision=2, name="custom", version_id=bad.id))
    failures = _failures()
    watcher = PolicyWatcher(live, db)
    with caplog.at_level(logging.ERROR, logger="gateway.policies.watcher"):
        assert not _run(watcher)
    assert live.current is serving and live.revision == 1
    assert _failures() == failures + 1
    assert "still serving revision 1" in caplog.text and "unknown policy 'gone'" in caplog.text
    # A restart on that database serves the config file's policies instead of refusing to start.
    restarted = stored_moderator(_base(), db, TABLES)
    assert restarted.revision is None and _failures() == failures + 2
    assert restarted.current.policy("custom").description == "seeded"


def _run(watcher: PolicyWatcher) -> bool:
    return asyncio.run(watcher.check_safely())


def test_start_warns_where_the_config_file_differs(
    db: sessionmaker[Session], caplog: pytest.LogCaptureFixture
) -> None:
    stored_moderator(_base(), db, TABLES)
    _store_and_activate(db, {"extends": "strict"})
    edited = {**TABLES, "newer": {"review_all": True}}
    with caplog.at_level(logging.WARNING, logger="gateway.policies.startup"):
        live = stored_moderator(_base(), db, edited)
    assert "custom: the config file's rules" in caplog.text and "stored version 2" in caplog.text
    assert "newer: in the config file, not stored" in caplog.text
    assert live.current.policy("custom").thresholds == PRESETS["strict"].thresholds  # the database wins
    assert "newer" not in live.current.policy_names


def test_a_fixed_moderator_is_live_too() -> None:
    """Components built by tests (no database policies) serve one moderator forever."""
    moderator = _base()
    live = LiveModerator(moderator)
    assert live.current is moderator and live.revision is None
