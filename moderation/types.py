"""The moderation library's vocabulary: what scorers return and what a policy decides.

These frozen dataclasses are the only thing the gateway sees of `moderation/`; the library knows nothing
of gRPC or the database, so the gateway converts them at its edge.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


class Action(enum.IntEnum):
    """What happens to an output. Ordered by severity so that `max()` picks the decision."""

    RELEASE = 0
    MASK = 1
    HOLD = 2
    BLOCK = 3


@dataclass(frozen=True)
class Span:
    """A flagged stretch of text, as character offsets `[start, end)` into the scored text."""

    start: int
    end: int
    category: str
    scorer: str


@dataclass(frozen=True)
class ScoreResult:
    """One scorer's verdict on one text: a score in [0, 1] per category and the spans it flagged."""

    scores: Mapping[str, float]
    spans: tuple[Span, ...] = ()


@runtime_checkable
class Scorer(Protocol):
    """Scores a batch of texts. Always called with a list, so batched models stay batched."""

    @property
    def name(self) -> str: ...

    @property
    def version(self) -> str:
        """Identifies the model/word list exactly enough to reproduce a decision later."""
        ...

    def score(self, texts: Sequence[str]) -> list[ScoreResult]: ...


@dataclass(frozen=True)
class Reason:
    """Why a rule fired. `excerpt` quotes the offending text: it is for reviewers and the audit log only,
    never for the client (a held or blocked text must not leak through its reasons)."""

    category: str
    score: float
    threshold: float
    action: Action
    excerpt: str = ""
    scorer: str = ""


@dataclass(frozen=True)
class ScorerInfo:
    name: str
    version: str


@dataclass(frozen=True)
class Decision:
    """The outcome for one text.

    `text` is what may be released: the original for RELEASE, the masked text for MASK. For HOLD and
    BLOCK it still holds the original (the gateway stores it for review) and the gateway must not send it.
    """

    action: Action
    text: str
    original_text: str
    scores: Mapping[str, float]
    reasons: tuple[Reason, ...]
    spans: tuple[Span, ...]
    policy_name: str
    policy_version: str
    scorers: tuple[ScorerInfo, ...] = field(default_factory=tuple)

    @property
    def releasable(self) -> bool:
        return self.action in (Action.RELEASE, Action.MASK)
