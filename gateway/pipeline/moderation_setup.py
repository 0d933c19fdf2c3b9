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
from moderation.scorers.detoxify_scorer import DetoxifyScorer

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
    if settings.cpu_prepack:
        prepack_scorers(moderator, settings.cpu_prepack_stock_rows)
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


def prepack_scorers(moderator: Moderator, stock_rows_setting: str) -> int:
    """`cpu_prepack` for the detoxify models that score fp32 on the CPU: their Linear layers on
    oneDNN-prepacked weights, as for GPT-Neo (same scores to fp32 rounding, ~1e-7). On host D (AMD Zen 4)
    BERT-base scored 1.14-1.19x more texts per second in batches of 8-32 (docs/benchmarks.md, round 4).
    Returns how many scorers it prepacked."""
    from gateway.generation.prepack import prepack_on_cpu

    done = 0
    for scorer in _detoxify_scorers(moderator):
        if scorer.device == "cpu" and not scorer.quantized:
            done += prepack_on_cpu(scorer.network, stock_rows_setting, f"{scorer.name} scoring")
    return done


def scores_on_cpu(moderator: Moderator) -> bool:
    """Whether every detoxify model scores on the CPU (then moderation competes with decoding for the
    cores, and `share_cores` applies; on a GPU two smaller batches cost more than one)."""
    return all(s.device == "cpu" for s in _detoxify_scorers(moderator))


def _detoxify_scorers(moderator: Moderator) -> list[DetoxifyScorer]:
    """The moderator's detoxify scorers, each once (one may score both raw and masked text)."""
    found = {id(s): s for s in (*moderator.scorers, *moderator.masked_scorers)}
    return [s for s in found.values() if isinstance(s, DetoxifyScorer)]
