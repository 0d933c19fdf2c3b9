"""Every replica checks the stored configuration's revision on an interval and rebuilds when it moved.

One indexed read per interval (`policy_refresh_s`, default 2 s), never one per request. A rebuild reuses
the loaded scorers (`Moderator.with_policies`): only the policies change, so it costs milliseconds. A
stored configuration was checked when written; if a rebuild still fails (a preset renamed by an upgrade,
the database gone mid-read), the replica keeps serving with the moderator it has, logs, and counts the
failure in `modgate_policy_reload_failures_total`: a bad row never takes a replica down.
"""

from __future__ import annotations

import asyncio
import logging

from prometheus_client import Counter, Gauge
from sqlalchemy.orm import Session, sessionmaker

from gateway.policies.live import LiveModerator
from gateway.policies.store import ActiveSet, active_set, latest_revision
from gateway.storage.tx import run_read_only
from gateway.wordlists.serving import WordListRouter
from gateway.wordlists.store import ServedLists, served_lists
from moderation.moderator import Moderator

__all__ = ["PolicyWatcher", "build_from", "build_router"]

log = logging.getLogger(__name__)

RELOADS = Counter("modgate_policy_reloads_total", "Moderators rebuilt because the stored policies changed.")
RELOAD_FAILURES = Counter(
    "modgate_policy_reload_failures_total",
    "Rebuilds from the stored policies that failed (the previous moderator kept serving).",
)
REVISION = Gauge("modgate_moderation_revision", "The stored moderation revision this replica serves.")


def build_from(base: Moderator, stored: ActiveSet) -> Moderator:
    """`base` (its scorers, masking, default and shadow policies) deciding under the stored policies.
    Raises ModerationConfigError or UnknownPolicyError."""
    return base.with_policies(stored.policies())


def build_router(moderator: Moderator, lists: ServedLists) -> WordListRouter | None:
    """The per-call variants of `moderator` with the attached word lists; None when none is attached."""
    return WordListRouter(moderator, lists) if lists.by_policy or lists.by_tenant else None


class PolicyWatcher:
    def __init__(self, live: LiveModerator, sessions: sessionmaker[Session]) -> None:
        self._live = live
        self._sessions = sessions

    def check(self) -> bool:
        """Rebuilds and swaps when the stored revision is not the served one; True when it swapped.
        Blocking (database, then the rebuild): run it off the event loop."""
        latest = run_read_only(self._sessions, lambda session: latest_revision(session=session))
        if latest == self._live.revision:
            return False
        stored, lists = run_read_only(
            self._sessions,
            lambda session: (
                (served := active_set(session=session)),
                served_lists(session=session, at_revision=served.revision),
            ),
        )
        moderator = build_from(self._live.current, stored)
        self._live.swap(moderator, revision=stored.revision, router=build_router(moderator, lists))
        RELOADS.inc()
        REVISION.set(stored.revision)
        log.info(
            "moderation revision %d is served now (policies: %s)",
            stored.revision,
            ", ".join(f"{name} v{version}" for name, version in stored.versions.items()) or "presets only",
        )
        if lists.by_policy or lists.by_tenant:
            log.info(
                "word lists attached at revision %d: %d to policies, %d to tenants",
                stored.revision,
                sum(len(v) for v in lists.by_policy.values()),
                sum(len(v) for v in lists.by_tenant.values()),
            )
        return True

    async def run(self, *, interval_s: float) -> None:
        """Checks every `interval_s` seconds until cancelled."""
        while True:
            await asyncio.sleep(interval_s)
            await self.check_safely()

    async def check_safely(self) -> bool:
        try:
            return await asyncio.to_thread(self.check)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bad stored row or a database hiccup must not stop serving
            RELOAD_FAILURES.inc()
            log.error(
                "cannot rebuild the moderator from stored revision (still serving revision %s): %s: %s",
                self._live.revision,
                exc.__class__.__name__,
                exc,
            )
            return False
