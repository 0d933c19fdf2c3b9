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
    """The `[moderation]` table to build from. Scorers pick their device themselves ("auto": CUDA when
    present, as for generation)."""
    if settings.offline_moderation:
        return offline_demo_config()
    if settings.moderation:
        return dict(settings.moderation)
    return default_config()


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
