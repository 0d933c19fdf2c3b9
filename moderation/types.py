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
class IdentityCheck:
    """The identity-term check on one category: the text re-scored with identity terms ("muslim", "gay",
    "black", ...) replaced by neutral ones ("person", "people"), by the same scorers.

    Why: classifiers trained on Jigsaw data score a text as an identity attack partly *because* it names
    an identity. When the neutral text stays below the threshold that fired, the identity term may be
    what fired it, so a BLOCK is softened to a HOLD (`softened`) and a human decides; the check never
    releases anything. Both scores are kept so that the reviewer sees them side by side.
    """

    category: str
    original_score: float
    neutral_score: float
    threshold: float  # the threshold that fired on the original text
    substituted_terms: tuple[str, ...]  # lower-case terms as listed, in order of first occurrence
    softened: bool = False  # True when this check turned the rule's BLOCK into a HOLD
    terms_version: str = ""  # `IdentityTerms.version`: which term list produced the neutral text


@dataclass(frozen=True)
class ShadowDecision:
    """What a policy running in shadow would have decided, from the same scores. It never acts: the live
    `Decision.action` and `text` do not depend on it. Recorded so that a stricter or looser policy can be
    measured on real traffic before it goes live."""

    policy_name: str
    policy_version: str
    action: Action
    reasons: tuple[Reason, ...]
    identity_checks: tuple[IdentityCheck, ...] = ()


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
    # The identity-term checks the live policy's rules triggered (see IdentityCheck); empty when none ran.
    identity_checks: tuple[IdentityCheck, ...] = ()
    # Decisions of the shadow policies, in the order asked for; they never change action or text.
    shadow: tuple[ShadowDecision, ...] = ()

    @property
    def releasable(self) -> bool:
        return self.action in (Action.RELEASE, Action.MASK)
