"""The moderator a server serves with, swapped whole when the stored configuration moves.

Why a holder and not a mutable moderator: a call takes `current` once and keeps that object, so a swap
never changes the rules under a call in flight (a stream stays on the moderator it started with), and
the swap itself is one reference assignment, atomic for every thread that reads it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from moderation.moderator import Moderator
from moderation.policy import Policy

if TYPE_CHECKING:
    from gateway.wordlists.serving import WordListRouter

__all__ = ["LiveModerator", "LivePolicies", "current_moderator", "moderator_for_call"]


class LiveModerator:
    def __init__(
        self, moderator: Moderator, *, revision: int | None = None, router: WordListRouter | None = None
    ) -> None:
        """`revision`: the stored configuration revision `moderator` was built from (None: not from the
        database, e.g. a test's fixed moderator). `router`: the variants of `moderator` with the word
        lists attached at that revision (gateway/wordlists/serving.py); None: no lists."""
        self._state = (moderator, revision, router)

    @property
    def current(self) -> Moderator:
        """The moderator without any attached word list (the base every variant extends)."""
        return self._state[0]

    @property
    def revision(self) -> int | None:
        return self._state[1]

    def for_call(self, tenant: str | None, policy: str | None) -> Moderator:
        """The moderator a call of `tenant` under `policy` decides with: the current one extended with
        the word lists attached to that policy and that tenant. Read once per call, like `current`."""
        moderator, _, router = self._state
        return router.for_call(tenant, policy) if router is not None else moderator

    def swap(self, moderator: Moderator, *, revision: int, router: WordListRouter | None = None) -> None:
        self._state = (moderator, revision, router)


def current_moderator(moderator: Moderator | LiveModerator) -> Moderator:
    """The moderator to use for one call, whichever of the two a component was given."""
    return moderator.current if isinstance(moderator, LiveModerator) else moderator


def moderator_for_call(
    moderator: Moderator | LiveModerator, tenant: str | None, policy: str | None
) -> Moderator:
    """`current_moderator` with the word lists of the call's tenant and policy applied."""
    return moderator.for_call(tenant, policy) if isinstance(moderator, LiveModerator) else moderator


class LivePolicies(Mapping[str, Policy]):
    """The served policies by name, read from the current moderator on every lookup (the web pages'
    thresholds and the backtest's `extends` follow an activation without a restart)."""

    def __init__(self, live: LiveModerator) -> None:
        self._live = live

    def __getitem__(self, name: str) -> Policy:
        return self._live.current.policies[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._live.current.policies)

    def __len__(self) -> int:
        return len(self._live.current.policies)
