"""Past outputs as the backtest's input (`moderation.backtest.RecordedOutput`), read from the database.

Reads the decision columns only (action, scores, reasons, spans, identity checks) and the reviewer's
verdict, never the texts, in chunks. The window is the policy report's (`report_data.in_window`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.review.report_data import VERDICT_OF_STATE, in_window
from gateway.storage.models import GenerationOutput, GenerationRequest, RequestStatus, ReviewItem
from moderation.backtest import RecordedOutput, recorded_output


@dataclass(frozen=True)
class Window:
    """Which outputs a backtest reads: created in [since, until), of `tenant`, decided by `policy`
    (None: any)."""

    since: datetime | None = None
    until: datetime | None = None
    tenant: str | None = None
    policy: str | None = None


def _narrowed(stmt: Any, window: Window) -> Any:
    stmt = in_window(stmt, since=window.since, until=window.until, tenant=window.tenant)
    if window.policy is not None:
        stmt = stmt.where(GenerationOutput.policy_name == window.policy)
    return stmt


def recorded_outputs(*, session: Session, window: Window) -> Iterator[RecordedOutput]:
    """The window's outputs that a moderation decision covers, with their verdicts where decided.

    Only outputs of completed requests: a stream cut short (cancelled, failed) records what it had sent
    with no decision over the whole text (`gateway.pipeline.recording.ReleasedPrefix`), so there is nothing to
    re-evaluate; `undecided_count` counts those."""
    stmt = (
        select(
            GenerationOutput.action,
            GenerationOutput.scores,
            GenerationOutput.reasons,
            GenerationOutput.spans,
            GenerationOutput.identity_checks,
            ReviewItem.state,
        )
        .join(GenerationRequest, GenerationOutput.generation_request_id == GenerationRequest.id)
        .outerjoin(ReviewItem, ReviewItem.output_id == GenerationOutput.id)
        .where(GenerationRequest.status == RequestStatus.COMPLETED)
        .order_by(GenerationOutput.created_at)
        .execution_options(yield_per=1000)
    )
    for action, scores, reasons, spans, checks, state in session.execute(_narrowed(stmt, window)):
        yield recorded_output(
            action=action.value,
            scores=scores,
            reasons=reasons,
            spans=spans,
            identity_checks=checks,
            verdict=VERDICT_OF_STATE.get(state) if state is not None else None,
        )


def undecided_count(*, session: Session, window: Window) -> int:
    """Outputs in the window no decision covers (streams that ended early): reported, not evaluated."""
    stmt = (
        select(func.count())
        .select_from(GenerationOutput)
        .join(GenerationRequest, GenerationOutput.generation_request_id == GenerationRequest.id)
        .where(GenerationRequest.status != RequestStatus.COMPLETED)
    )
    return int(session.scalar(_narrowed(stmt, window)) or 0)
