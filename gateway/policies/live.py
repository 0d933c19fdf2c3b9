"""The moderator a server serves with, swapped whole when the stored configuration moves.

Why a holder and not a mutable moderator: a call takes `current` once and keeps that object, so a swap
never changes the rules under a call in flight (a stream stays on the moderator it started with), and
the swap itself is one reference assignment, atomic for every thread that reads it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from moderation.moderator import Moderator
from moderation.policy import Policy

__all__ = ["LiveModerator", "LivePolicies", "current_moderator"]


class LiveModerator:
    def __init__(self, moderator: Moderator, *, revision: int | None = None) -> None:
        """`revision`: the stored configuration revision `moderator` was built from (None: not from the
        database, e.g. a test's fixed moderator)."""
        self._state = (moderator, revision)

    @property
    def current(self) -> Moderator:
        return self._state[0]

    @property
    def revision(self) -> int | None:
        return self._state[1]

    def swap(self, moderator: Moderator, *, revision: int) -> None:
        self._state = (moderator, revision)


def current_moderator(moderator: Moderator | LiveModerator) -> Moderator:
    """The moderator to use for one call, whichever of the two a component was given."""
    return moderator.current if isinstance(moderator, LiveModerator) else moderator


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
