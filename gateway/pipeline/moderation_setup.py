"""Builds the moderator the settings ask for, and says loudly what it loaded.

Which scorers run is configuration: the production default needs detoxify's weights; the offline set
(word list + alt-profanity-check) is chosen only by an explicit switch, never as a silent fallback.
"""

from __future__ import annotations

import logging
from typing import Any

from gateway.config import Settings
from moderation.config import ModerationConfigError, build_moderator, default_config, offline_demo_config
from moderation.moderator import Moderator

log = logging.getLogger(__name__)


class ModerationLoadError(RuntimeError):
    """The configured moderation cannot be built; the message says what to change."""


def moderation_config(settings: Settings) -> dict[str, Any]:
    """The `[moderation]` table to build from. `offline_moderation` swaps in the scorers that need no
    downloaded weights and keeps the rest (policies, default policy, masking, shadows). Scorers pick
    their device themselves ("auto": CUDA when present, as for generation)."""
    base = dict(settings.moderation) if settings.moderation else default_config()
    if settings.offline_moderation:
        offline = offline_demo_config()
        return {**offline, **base, "scorers": offline["scorers"]}
    return base


def load_moderator(settings: Settings) -> Moderator:
    config = moderation_config(settings)
    try:
        moderator = build_moderator(config)
    except ModerationConfigError as exc:
        raise ModerationLoadError(
            f"cannot build the moderation pipeline: {exc}\nOn a machine without detoxify's weights, "
            "either give a local checkpoint in the [moderation] table of the config file (see "
            "docs/moderation.md), or start with --offline-moderation to use only the scorers that need "
            "no download (word list + alt-profanity-check)."
        ) from exc
    if settings.offline_moderation:
        log.warning(
            "=" * 72 + "\nOFFLINE MODERATION: detoxify is NOT loaded; scoring with the word list and "
            "alt-profanity-check only.\n" + "=" * 72
        )
    scorers = ", ".join(f"{s.name} ({s.version})" for s in moderator.scorers_info)
    log.info(
        "moderation loaded: scorers %s; policies %s (default %s)",
        scorers,
        ", ".join(moderator.policy_names),
        moderator.default_policy,
    )
    return moderator
