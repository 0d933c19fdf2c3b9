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
from moderation.moderator import Moderator

__all__ = ["PolicyWatcher", "build_from"]

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
        stored = run_read_only(self._sessions, lambda session: active_set(session=session))
        moderator = build_from(self._live.current, stored)
        self._live.swap(moderator, revision=stored.revision)
        RELOADS.inc()
        REVISION.set(stored.revision)
        log.info(
            "moderation revision %d is served now (policies: %s)",
            stored.revision,
            ", ".join(f"{name} v{version}" for name, version in stored.versions.items()) or "presets only",
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
