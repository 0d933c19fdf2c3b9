"""Reviewer verdicts as the policy report's input (`moderation.report.ReviewedOutput`).

Every decided review item is a labelled example of whether the automatic decision was right; outputs
nobody reviewed still count in the shadow policies' "would have held / released" summary. Labelled QA
samples (`qa_labels`) are the released side: the miss rate and the suggestions' released outputs.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Select, or_, select
from sqlalchemy.orm import Session

from gateway.review.prompt_runs import PROMPT_SCREENED
from gateway.storage.models import (
    GenerationOutput,
    GenerationRequest,
    QaSample,
    QaState,
    ReviewerVerdict,
    ReviewItem,
    ReviewState,
)
from moderation.agreement import RatedItem
from moderation.miss_rate import QaLabel
from moderation.report import ReviewedOutput

VERDICT_OF_STATE = {
    ReviewState.APPROVED: "approved",
    ReviewState.EDITED: "edited",
    ReviewState.REJECTED: "rejected",
}
_HOLDING = {"hold", "block"}  # a blocked output reaches a reviewer through an appeal
S = TypeVar("S", bound=Select[Any])


def _scores(raw: Any) -> dict[str, float]:
    return {k: float(v) for k, v in (raw or {}).items() if isinstance(v, int | float)}


def _held_by(reasons: Any) -> tuple[str, ...]:
    return tuple(dict.fromkeys(r["category"] for r in reasons or [] if r.get("action") in _HOLDING))


def in_window(stmt: S, *, since: datetime | None, until: datetime | None, tenant: str | None) -> S:
    """`stmt` (which joins GenerationRequest) narrowed to outputs created in [since, until) of `tenant`:
    the one window the report and the backtest share.

    Screened prompts' slots are left out: their scores and verdicts are about a prompt, not a generated
    text, so counting them would move the output thresholds the report suggests and the backtest checks
    (a screened prompt is counted by `modgate_prompt_screening_total` and audited)."""
    stmt = stmt.where(
        or_(GenerationOutput.finish_reason.is_(None), GenerationOutput.finish_reason != PROMPT_SCREENED)
    )
    if since is not None:
        stmt = stmt.where(GenerationOutput.created_at >= since)
    if until is not None:
        stmt = stmt.where(GenerationOutput.created_at < until)
    if tenant is not None:
        stmt = stmt.where(GenerationRequest.tenant == tenant)
    return stmt


def reviewed_outputs(
    *,
    session: Session,
    since: datetime | None = None,
    until: datetime | None = None,
    tenant: str | None = None,
) -> Iterator[ReviewedOutput]:
    """Outputs created in [since, until) (optionally one tenant's), with their reviewer's verdict if any.

    Reads only the columns the report needs, in chunks: never the texts."""
    stmt = (
        select(
            GenerationOutput.scores,
            GenerationOutput.reasons,
            GenerationOutput.policy_name,
            GenerationOutput.shadow,
            ReviewItem.state,
        )
        .join(GenerationRequest, GenerationOutput.generation_request_id == GenerationRequest.id)
        .outerjoin(ReviewItem, ReviewItem.output_id == GenerationOutput.id)
        .order_by(GenerationOutput.created_at)
        .execution_options(yield_per=1000)
    )
    stmt = in_window(stmt, since=since, until=until, tenant=tenant)
    for scores, reasons, policy, shadow, state in session.execute(stmt):
        yield ReviewedOutput(
            category_scores=_scores(scores),
            held_by=_held_by(reasons),
            policy=policy,
            verdict=VERDICT_OF_STATE.get(state) if state is not None else None,
            shadow_actions={s["policy_name"]: s["action"] for s in shadow or []},
        )


def rated_items(
    *,
    session: Session,
    since: datetime | None = None,
    until: datetime | None = None,
    tenant: str | None = None,
) -> list[RatedItem]:
    """The reviewers' verdicts on items that several reviewed (`[review.consensus]`), for the report's
    agreement rows: outputs in the same window as `reviewed_outputs`, verdicts in the order given. An
    admin's deciding verdict on an escalated item is a decision, not one of these."""
    stmt = (
        select(
            ReviewerVerdict.item_id,
            ReviewerVerdict.reviewer_id,
            ReviewerVerdict.decision,
            GenerationOutput.policy_name,
            GenerationOutput.reasons,
        )
        .join(ReviewItem, ReviewItem.id == ReviewerVerdict.item_id)
        .join(GenerationOutput, GenerationOutput.id == ReviewItem.output_id)
        .join(GenerationRequest, GenerationOutput.generation_request_id == GenerationRequest.id)
        .order_by(ReviewerVerdict.item_id, ReviewerVerdict.created_at, ReviewerVerdict.id)
    )
    stmt = in_window(stmt, since=since, until=until, tenant=tenant)
    items: dict[str, tuple[str, tuple[str, ...], list[tuple[str, str]]]] = {}
    for item_id, reviewer_id, decision, policy, reasons in session.execute(stmt):
        if item_id not in items:
            items[item_id] = (policy, _held_by(reasons), [])
        items[item_id][2].append((reviewer_id, decision))
    return [RatedItem(policy, held_by, tuple(verdicts)) for policy, held_by, verdicts in items.values()]


def qa_labels(
    *,
    session: Session,
    since: datetime | None = None,
    until: datetime | None = None,
    tenant: str | None = None,
) -> Iterator[QaLabel]:
    """Labelled QA samples of outputs created in [since, until) (optionally one tenant's): the miss
    rate's and the suggestion's unbiased view of released text. Scores and labels only, never texts."""
    stmt = (
        select(
            GenerationOutput.scores,
            QaSample.policy_name,
            QaSample.state,
            QaSample.categories,
            QaSample.sample_rate,
        )
        .select_from(QaSample)
        .join(GenerationOutput, QaSample.output_id == GenerationOutput.id)
        .join(GenerationRequest, GenerationOutput.generation_request_id == GenerationRequest.id)
        .where(QaSample.state != QaState.PENDING)
        .order_by(GenerationOutput.created_at)
        .execution_options(yield_per=1000)
    )
    stmt = in_window(stmt, since=since, until=until, tenant=tenant)
    for scores, policy, state, categories, rate in session.execute(stmt):
        yield QaLabel(
            policy=policy,
            category_scores=_scores(scores),
            harmful_categories=tuple(categories or ()) if state == QaState.HARMFUL else (),
            sample_rate=float(rate),
        )
