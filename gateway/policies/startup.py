"""At start: seed the database from the TOML file's policies if it never was, then serve what is stored.

How the TOML file and the database interact (docs/moderation.md, "Policies in the database"): the first
server (or `modgate policy seed`) on an empty database stores `[moderation.policies]` as the first
versions, revision 1. From then on the database is the source of truth for policies; the TOML's
policies are not read again, and a start whose TOML differs from the served versions says so in a
warning (change policies with `modgate policy set` / `activate`). Everything else in `[moderation]`
(scorers, masking, default and shadow policies) stays in the TOML file.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from gateway.errors import GatewayError
from gateway.policies.live import LiveModerator
from gateway.policies.resolve import resolve
from gateway.policies.store import ActiveSet, active_set, seed
from gateway.policies.watcher import RELOAD_FAILURES, REVISION, build_from, build_router
from gateway.storage.tx import run_in_transaction, run_read_only
from gateway.wordlists.store import served_lists
from moderation.config import ModerationConfigError
from moderation.moderator import Moderator

__all__ = ["SEED_ACTOR", "differences", "seed_once", "stored_moderator"]

log = logging.getLogger(__name__)

SEED_ACTOR = "config:seed"


def seed_once(sessions: sessionmaker[Session], tables: Mapping[str, Mapping[str, Any]]) -> int | None:
    """Seeds if the database never was; the revision made, or None (already seeded, or another replica
    won the race to seed)."""
    try:
        revision = run_in_transaction(sessions, lambda s: seed(session=s, tables=tables, actor=SEED_ACTOR))
    except IntegrityError:
        log.info("another replica seeded the stored policies first")
        return None
    if revision is not None:
        log.info(
            "stored the config file's policies as revision %d: %s", revision, ", ".join(tables) or "none"
        )
    return revision


def differences(tables: Mapping[str, Mapping[str, Any]], stored: ActiveSet) -> list[str]:
    """What the TOML file says that the database does not serve, one line each (for the start warning)."""
    try:
        from_file = resolve(tables)
        served = stored.policies()
    except ModerationConfigError as exc:
        return [f"cannot compare: {exc}"]
    out = []
    for name in tables:
        if name not in stored.versions:
            out.append(f"{name}: in the config file, not stored (store it with `modgate policy set`)")
        elif from_file[name].version != served[name].version:
            out.append(
                f"{name}: the config file's rules ({from_file[name].version}) differ from stored version "
                f"{stored.versions[name]} ({served[name].version}), which is served"
            )
    return out


def stored_moderator(
    base: Moderator, sessions: sessionmaker[Session], tables: Mapping[str, Mapping[str, Any]]
) -> LiveModerator:
    """The moderator to serve: `base`'s scorers under the stored policies. If the stored ones cannot be
    built, `base` (the config file's policies) serves, loudly, and the watcher keeps trying."""
    seed_once(sessions, tables)
    stored, lists = run_read_only(
        sessions,
        lambda s: ((served := active_set(session=s)), served_lists(session=s, at_revision=served.revision)),
    )
    for line in differences(tables, stored):
        log.warning("stored policies win over the config file: %s", line)
    try:
        moderator = build_from(base, stored)
        router = build_router(moderator, lists)
    except (ModerationConfigError, GatewayError, KeyError, ValueError) as exc:
        RELOAD_FAILURES.inc()
        log.error(
            "cannot build the moderator from stored revision %d (%s: %s); serving the config file's "
            "policies until a stored revision builds",
            stored.revision,
            exc.__class__.__name__,
            exc,
        )
        return LiveModerator(base)
    REVISION.set(stored.revision)
    return LiveModerator(moderator, revision=stored.revision, router=router)
