"""Several reviewers per item: a policy may ask for `k` independent verdicts on its held outputs (or its
appealed blocks, or only some categories) and a rule to combine them.

Configuration is the `[review.consensus.POLICY]` tables of the settings file, parsed and checked here.
A verdict is not a decision: `queue.decide` records it (one per reviewer and item, the reviewer's claim
ends, the item goes back to the queue for the next reviewer) until `k` are in; then :func:`combine`
turns them into the item's one final decision, or an escalation to the admins when they disagree.
Nobody but an admin deciding an escalated item ever sees the verdicts before the final decision.

The rules, on approve / edit / reject verdicts (an edit votes "release", like an approve):

* ``unanimous``: every verdict releases, or every verdict rejects; anything else escalates.
* ``majority``: more than half release, or more than half reject; a tie escalates.
* ``any-reject``: one reject rejects; otherwise release. It never escalates on release-or-not.

When the rule releases, the text must be agreed too: all the releasing verdicts are plain approves (the
text as generated is released) or all are edits with the same text (that text is released). Releasing
verdicts that differ on the text escalate, and the admin decides what, if anything, is released.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from gateway.storage.models import Reviewer, ReviewerVerdict, ReviewItem

MAX_VERDICTS = 9  # more would be a committee, not a review queue
ACTIONS = ("hold", "block")  # a blocked output reaches reviewers only through a client's appeal
APPROVE, EDIT, REJECT = "approve", "edit", "reject"
CONSENSUS_ACTOR = "system:consensus"


class ConsensusRule(enum.StrEnum):
    UNANIMOUS = "unanimous"
    MAJORITY = "majority"
    ANY_REJECT = "any-reject"


@dataclass(frozen=True)
class Consensus:
    """What one policy asks: `verdicts` verdicts per item, combined by `rule`, for items whose output the
    policy held or blocked (`for_actions`) and, when `for_categories` is set, only for outputs one of
    whose reasons is in those categories."""

    verdicts: int
    rule: ConsensusRule
    for_actions: frozenset[str] = frozenset(ACTIONS)
    for_categories: frozenset[str] | None = None

    def applies(self, *, action: str, categories: Iterable[str]) -> bool:
        if action not in self.for_actions:
            return False
        return self.for_categories is None or not self.for_categories.isdisjoint(categories)


class ConsensusConfigError(ValueError):
    """A consensus table is malformed; the message names the key."""


_KEYS = {"verdicts", "rule", "for_actions", "for_categories"}


def _names(where: str, value: Any, allowed: Sequence[str] | None = None) -> frozenset[str]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
        raise ConsensusConfigError(f"{where}: a non-empty list of names, got {value!r}")
    if allowed is not None and set(value) - set(allowed):
        raise ConsensusConfigError(f"{where}: each one of {', '.join(allowed)}, got {value!r}")
    return frozenset(value)


def parse_consensus(table: Any) -> dict[str, Consensus]:
    """`{"default": {"verdicts": 2, "rule": "unanimous", "for_actions": ["block"]}, ...}` -> policy ->
    Consensus. `verdicts = 1` is allowed and means "one reviewer decides", as without a table."""
    if not isinstance(table, Mapping):
        raise ConsensusConfigError("review.consensus must be a table of policies")
    parsed = {}
    for policy, entry in table.items():
        where = f"review.consensus.{policy}"
        if not isinstance(entry, Mapping) or set(entry) - _KEYS or "verdicts" not in entry:
            raise ConsensusConfigError(
                f"{where}: a table with verdicts and optional rule, for_actions, for_categories"
            )
        verdicts = entry["verdicts"]
        if isinstance(verdicts, bool) or not isinstance(verdicts, int) or not 1 <= verdicts <= MAX_VERDICTS:
            raise ConsensusConfigError(
                f"{where}.verdicts: a whole number from 1 to {MAX_VERDICTS}, got {verdicts!r}"
            )
        try:
            rule = ConsensusRule(entry.get("rule", ConsensusRule.UNANIMOUS.value))
        except ValueError:
            choices = ", ".join(r.value for r in ConsensusRule)
            raise ConsensusConfigError(f"{where}.rule: one of {choices}, got {entry.get('rule')!r}") from None
        actions = _names(f"{where}.for_actions", entry.get("for_actions", list(ACTIONS)), ACTIONS)
        categories = (
            _names(f"{where}.for_categories", entry["for_categories"]) if "for_categories" in entry else None
        )
        parsed[str(policy)] = Consensus(verdicts, rule, actions, categories)
    return parsed


def required(item: ReviewItem, consensus: Mapping[str, Consensus]) -> Consensus | None:
    """The consensus `item` needs now, or None when one decision settles it: no table for its policy,
    a table that does not cover it, `verdicts = 1`, or an escalated item (an admin decides those alone)."""
    if item.escalated:
        return None
    output = item.output
    wanted = consensus.get(output.policy_name)
    if wanted is None or wanted.verdicts < 2:
        return None
    categories = [str(r.get("category", "")) for r in output.reasons or [] if isinstance(r, Mapping)]
    return wanted if wanted.applies(action=output.action.value, categories=categories) else None


@dataclass(frozen=True)
class Vote:
    decision: str  # approve, edit or reject
    edited_text: str | None = None


class OutcomeKind(enum.StrEnum):
    WAIT = "wait"  # fewer verdicts than asked: back to the queue for the next reviewer
    DECIDE = "decide"  # final: `decision` (and `edited_text` for an edit)
    ESCALATE = "escalate"  # the verdicts disagree: an admin decides


@dataclass(frozen=True)
class Outcome:
    kind: OutcomeKind
    summary: str  # for the audit log and the decision reason: counts only, never text
    decision: str | None = None
    edited_text: str | None = None


def tally(votes: Sequence[Vote]) -> str:
    counts = Counter(v.decision for v in votes)
    return ", ".join(f"{counts[d]} {d}" for d in (APPROVE, EDIT, REJECT) if counts[d])


def combine(wanted: Consensus, votes: Sequence[Vote]) -> Outcome:
    """The verdicts so far -> wait, a final decision, or an escalation (see the module's docstring)."""
    summary = f"{wanted.rule.value}, {len(votes)} of {wanted.verdicts} verdicts: {tally(votes)}"
    if len(votes) < wanted.verdicts:
        return Outcome(OutcomeKind.WAIT, summary)
    releasing = [v for v in votes if v.decision != REJECT]
    rejects = len(votes) - len(releasing)
    release: bool | None
    if wanted.rule is ConsensusRule.UNANIMOUS:
        release = True if rejects == 0 else False if not releasing else None
    elif wanted.rule is ConsensusRule.MAJORITY:
        release = True if 2 * len(releasing) > len(votes) else False if 2 * rejects > len(votes) else None
    else:
        release = rejects == 0
    if release is None:
        return Outcome(OutcomeKind.ESCALATE, f"verdicts disagree ({summary})")
    if not release:
        return Outcome(OutcomeKind.DECIDE, summary, REJECT)
    texts = {v.edited_text if v.decision == EDIT else None for v in releasing}
    if len(texts) > 1:
        return Outcome(OutcomeKind.ESCALATE, f"the releasing verdicts differ on the text ({summary})")
    [text] = texts
    return Outcome(OutcomeKind.DECIDE, summary, APPROVE if text is None else EDIT, text)


# Data functions (take `session=`, never commit).


def has_given(*, session: Session, item_id: str, reviewer: Reviewer) -> bool:
    return bool(
        session.scalar(
            select(
                exists().where(ReviewerVerdict.item_id == item_id, ReviewerVerdict.reviewer_id == reviewer.id)
            )
        )
    )


def not_given_by(reviewer: Reviewer) -> Any:
    """A WHERE clause on ReviewItem: items `reviewer` has not given a verdict on (claim_next's filter)."""
    return ~exists().where(
        ReviewerVerdict.item_id == ReviewItem.id, ReviewerVerdict.reviewer_id == reviewer.id
    )


def only_approvals_given() -> Any:
    """A WHERE clause on ReviewItem: every verdict given so far (if any) approves the text as generated.
    An `approve` review deadline applies only to such items: it is for holds nobody objected to, never a
    way past a reviewer's reject, nor past an edit (the reviewer did not accept the text as it stands,
    and the deadline would release exactly that text)."""
    return ~exists().where(ReviewerVerdict.item_id == ReviewItem.id, ReviewerVerdict.decision != APPROVE)


def votes_of(*, session: Session, item_id: str) -> list[Vote]:
    rows = session.execute(
        select(ReviewerVerdict.decision, ReviewerVerdict.edited_text)
        .where(ReviewerVerdict.item_id == item_id)
        .order_by(ReviewerVerdict.created_at, ReviewerVerdict.id)
    ).all()
    return [Vote(decision, text) for decision, text in rows]


def verdicts_of(*, session: Session, item_id: str) -> list[tuple[str, ReviewerVerdict]]:
    """(reviewer's username, verdict) in the order given: for admins deciding an escalated item."""
    rows = session.execute(
        select(Reviewer.username, ReviewerVerdict)
        .join(Reviewer, Reviewer.id == ReviewerVerdict.reviewer_id)
        .where(ReviewerVerdict.item_id == item_id)
        .order_by(ReviewerVerdict.created_at, ReviewerVerdict.id)
    ).all()
    return [(name, verdict) for name, verdict in rows]


def verdict_counts(*, session: Session, item_ids: Sequence[str]) -> dict[str, int]:
    """item id -> verdicts given (items without any are absent): the queue's "1 of 2"."""
    if not item_ids:
        return {}
    rows = session.execute(
        select(ReviewerVerdict.item_id, func.count())
        .where(ReviewerVerdict.item_id.in_(item_ids))
        .group_by(ReviewerVerdict.item_id)
    ).all()
    return {item_id: int(n) for item_id, n in rows}
