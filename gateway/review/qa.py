"""QA sampling of released outputs: which ones are drawn, and reviewers' harmful/fine labels.

Held outputs only show what the policy stopped; the miss rate ("how much harmful text do we release?")
needs a sample of what it let through. Configuration: `[review.qa.POLICY] sample_rate = 0.02`.

Drawing. An output the policy released or masked is in the sample when a hash of its id falls below
the policy's rate (`is_sampled`): the same output is always in or out (reproducible, testable), and
the draw does not depend on the text, the scores or the client, so the sample is uniform over
released outputs. The sample row is written in the transaction that records the output (one INSERT,
no extra round trip), so no released output can be missed or drawn twice, whatever replica recorded
it. The client's answer is the same with or without QA: nothing here reads or changes the decision.

Labelling. A separate queue from held items: the client already has the text, so a label changes
nothing for anyone but the report. A sample is labelled once (a conditional UPDATE from pending: two
reviewers racing, one wins and the other gets `AlreadyDecided`); harmful needs the categories it is
harmful in (the output's scored categories, or `other`), fine takes none. Labels are audited
(`qa.labelled`, no text).
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from gateway.audit import events
from gateway.audit.chain import append as audit_append
from gateway.review.errors import AlreadyDecided, InvalidArgument, NotFound
from gateway.storage.base import utcnow
from gateway.storage.models import GenerationOutput, ModerationAction, QaSample, QaState, Reviewer
from moderation.miss_rate import ANY, OTHER

SAMPLED_ACTIONS = frozenset({ModerationAction.RELEASE, ModerationAction.MASK})
MAX_CATEGORIES = 32
_CATEGORY = re.compile(r"^[a-z0-9_]{1,64}$")
_SALT = b"modgate-qa-v1:"


class QaConfigError(ValueError):
    """A `[review.qa]` table is malformed; the message names the key."""


def parse_qa(table: Any) -> dict[str, float]:
    """`{"default": {"sample_rate": 0.02}, ...}` -> policy name -> rate in (0, 1]."""
    if not isinstance(table, Mapping):
        raise QaConfigError("review.qa must be a table of policies")
    rates: dict[str, float] = {}
    for policy, entry in table.items():
        where = f"review.qa.{policy}"
        if not isinstance(entry, Mapping) or set(entry) != {"sample_rate"}:
            raise QaConfigError(f"{where}: a table with one key, sample_rate")
        rate = entry["sample_rate"]
        if (
            isinstance(rate, bool)
            or not isinstance(rate, int | float)
            or not math.isfinite(rate)
            or not 0 < rate <= 1
        ):
            raise QaConfigError(
                f"{where}.sample_rate: a share of released outputs in (0, 1], e.g. 0.02, got {rate!r}"
            )
        rates[str(policy)] = float(rate)
    return rates


def draw_value(output_id: str) -> float:
    """A number in [0, 1) that is a fixed, uniform-looking function of the output id."""
    digest = hashlib.sha256(_SALT + output_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def is_sampled(output_id: str, rate: float) -> bool:
    return draw_value(output_id) < rate


def draw(*, session: Session, output: GenerationOutput, rates: Mapping[str, float]) -> QaSample | None:
    """Put `output` in the QA sample if its policy is sampled, it was released or masked, and its id
    is drawn; in the caller's transaction."""
    rate = rates.get(output.policy_name)
    if rate is None or ModerationAction(output.action) not in SAMPLED_ACTIONS:
        return None
    if not is_sampled(output.id, rate):
        return None
    sample = QaSample(output_id=output.id, policy_name=output.policy_name, sample_rate=rate)
    session.add(sample)
    session.flush()
    return sample


def label_choices(output: GenerationOutput) -> list[str]:
    """The categories a harmful label may name: the output's scored categories, then `other`."""
    scored = sorted(
        k
        for k, v in (output.scores or {}).items()
        if isinstance(v, int | float) and _CATEGORY.match(k) and k != ANY
    )
    return [*scored, OTHER]


def get_sample(*, session: Session, sample_id: str) -> QaSample:
    sample = session.get(QaSample, sample_id)
    if sample is None:
        raise NotFound(f"QA sample {sample_id} not found")
    return sample


def pending(*, session: Session, limit: int = 100) -> list[QaSample]:
    """Unlabelled samples, oldest first."""
    stmt = (
        select(QaSample)
        .where(QaSample.state == QaState.PENDING)
        .order_by(QaSample.created_at, QaSample.id)
        .limit(limit)
    )
    return list(session.scalars(stmt))


def state_counts(*, session: Session) -> dict[str, int]:
    rows = session.execute(select(QaSample.state, func.count()).group_by(QaSample.state)).all()
    counts = {s.value: 0 for s in QaState}
    counts.update({QaState(state).value: int(n) for state, n in rows})
    return counts


@dataclass(frozen=True)
class Label:
    """A reviewer's label: harmful (in `categories`) or fine (no categories)."""

    harmful: bool
    categories: tuple[str, ...]

    @classmethod
    def parse(cls, verdict: str, categories: Sequence[str], *, choices: Iterable[str]) -> Label:
        """Checks a label against the sample's choices; a bad one is InvalidArgument naming the field."""
        if verdict not in ("harmful", "fine"):
            raise InvalidArgument("label", "must be harmful or fine")
        unique = tuple(dict.fromkeys(categories))
        if verdict == "fine":
            if unique:
                raise InvalidArgument("categories", "a fine label names no categories")
            return cls(harmful=False, categories=())
        if not unique:
            raise InvalidArgument("categories", "a harmful label needs at least one category")
        if len(unique) > MAX_CATEGORIES:
            raise InvalidArgument("categories", f"at most {MAX_CATEGORIES}")
        allowed = set(choices)
        unknown = [c for c in unique if c not in allowed]
        if unknown:
            raise InvalidArgument(
                "categories", f"unknown for this output: {', '.join(repr(c[:64]) for c in unknown[:5])}"
            )
        return cls(harmful=True, categories=unique)


def label_sample(*, session: Session, sample_id: str, reviewer: Reviewer, label: Label) -> QaSample:
    """Labels a pending sample exactly once; a labelled one is `AlreadyDecided` (labels are final)."""
    sample = get_sample(session=session, sample_id=sample_id)
    now = utcnow()
    state = QaState.HARMFUL if label.harmful else QaState.FINE
    done = session.execute(
        update(QaSample)
        .where(QaSample.id == sample_id, QaSample.state == QaState.PENDING)
        .values(state=state, categories=list(label.categories), labelled_by=reviewer.id, labelled_at=now)
        .execution_options(synchronize_session=False)
    )
    if not done.rowcount:  # type: ignore[attr-defined]
        session.refresh(sample)
        raise AlreadyDecided(f"QA sample {sample_id} was already labelled {sample.state.value}")
    session.refresh(sample)
    output = sample.output
    audit_append(
        session=session,
        event_type=events.QA_LABELLED,
        actor=f"reviewer:{reviewer.username}",
        tenant=output.request.tenant,
        request_id=output.request.request_id,
        action=state.value,
        payload={
            "sample_id": sample.id,
            "output_id": output.id,
            "policy": sample.policy_name,
            "sample_rate": sample.sample_rate,
            "label": state.value,
            "categories": list(label.categories),
        },
    )
    return sample
