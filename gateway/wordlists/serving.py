"""The moderator each call decides with, once word lists are attached: built once per revision.

Why variants and not a scorer that takes a tenant at call time: a moderator variant is the base
moderator with its profanity scorer(s) extended by the lists attached to the call's policy and tenant
(`ProfanityScorer.extended`); every other scorer and model is shared, not reloaded. All variants are
built when the revision changes (in the watcher's thread, off the event loop), so a call only does a
dictionary lookup, and the extended scorer's version names the exact list versions
(`...+lists-ID.VERSION,...`), which every decision records. A tenant's lists are only in the variants
picked for that tenant's calls: they never touch another tenant's decisions.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from gateway.wordlists.store import ServedLists, Snapshot
from moderation.moderator import Moderator
from moderation.scorers.profanity import ProfanityScorer
from moderation.types import Scorer

__all__ = ["WordListRouter", "extend_with", "extended_by"]

log = logging.getLogger(__name__)


def extended_by(scorer: ProfanityScorer, lists: Iterable[Snapshot]) -> ProfanityScorer:
    """`scorer` extended by `lists` (blocks and allows), in the order of their refs: its version then
    names them (`moderation.scorers.profanity.list_refs`), the same whether served or replayed."""
    chosen = sorted(lists, key=lambda s: s.ref)
    return scorer.extended(
        words=[w for s in chosen for w in s.words],
        allow=[a for s in chosen for a in s.allow],
        refs=[s.ref for s in chosen],
    )


def extend_with(base: Moderator, lists: Iterable[Snapshot]) -> Moderator:
    """`base` with every profanity scorer extended by `lists`."""
    chosen = list(lists)

    def replace(scorer: Scorer) -> Scorer:
        return extended_by(scorer, chosen) if isinstance(scorer, ProfanityScorer) else scorer

    return base.with_scorers(replace)


class WordListRouter:
    """Picks, per call, the variant of `base` for the lists attached to its policy and its tenant."""

    def __init__(self, base: Moderator, served: ServedLists) -> None:
        self._base = base
        self._by_policy = served.by_policy
        self._by_tenant = served.by_tenant
        self._variants: dict[frozenset[tuple[int, int]], Moderator] = {}
        if (served.by_policy or served.by_tenant) and not any(
            isinstance(s, ProfanityScorer) for s in _scorers(base)
        ):
            log.warning("word lists are attached but no profanity scorer is configured: they change nothing")
        for tenant_lists in [(), *served.by_tenant.values()]:
            for policy_lists in [(), *served.by_policy.values()]:
                self._variant([*tenant_lists, *policy_lists])

    def _variant(self, lists: list[Snapshot]) -> Moderator:
        if not lists:
            return self._base
        key = frozenset(s.ref for s in lists)
        if key not in self._variants:
            self._variants[key] = extend_with(self._base, {s.ref: s for s in lists}.values())
        return self._variants[key]

    def for_call(self, tenant: str | None, policy: str | None) -> Moderator:
        """The moderator for a call of `tenant` under `policy` (None: the default policy)."""
        name = policy if policy is not None else self._base.default_policy
        lists = [*self._by_tenant.get(tenant or "", ()), *self._by_policy.get(name, ())]
        return self._variant(lists)  # prebuilt for every combination at construction


def _scorers(moderator: Moderator) -> list[Scorer]:
    return [*moderator.scorers, *moderator.masked_scorers]
