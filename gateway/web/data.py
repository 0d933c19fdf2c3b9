"""Read models for the pages: plain frozen dataclasses built inside a transaction.

The views never hand ORM objects to templates (they would be detached by then); they build these
instead. Queue order and visibility come from :func:`gateway.review.queue.list_items`, so the page
shows exactly what ``claim_next`` would hand out, escalated items included only for admins.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from gateway.review import consensus as cons
from gateway.review import queue
from gateway.review.deadlines import Deadline, DeadlineAction
from gateway.review.prompt_runs import is_prompt_output
from gateway.storage.base import utcnow
from gateway.storage.models import GenerationOutput, Reviewer, ReviewItem, ReviewState
from gateway.web import present

QUEUE_LIMIT = 200
OPEN_STATES = {ReviewState.PENDING, ReviewState.CLAIMED}
SORTS = ("priority", "age", "tenant", "score")


@dataclass(frozen=True)
class QueueRow:
    id: str
    ticket: str
    tenant: str
    created_at: datetime
    age: str
    state: str  # pending, claimed, or "lapsed" for a claim whose lease ran out (claimable again)
    claimed_by: str | None
    mine: bool
    escalated: bool
    appeal: bool  # a client's appeal of an output the policy blocked
    priority: float
    reasons: list[present.ReasonView]
    top_scores: list[tuple[str, float]]
    due: str | None = None  # what the policy's review deadline will do, and when ("reject in 12m")
    prompt: bool = False  # a held (or appealed blocked) prompt: nothing was generated
    verdicts: str | None = None  # "1 of 2 verdicts" for an item that needs several reviewers

    @property
    def top_score(self) -> float:
        return self.top_scores[0][1] if self.top_scores else 0.0


@dataclass(frozen=True)
class QueueView:
    rows: list[QueueRow]
    counts: dict[str, int]
    sort: str
    descending: bool
    truncated: bool


def _names(session: Session, ids: set[str]) -> dict[str, str]:
    ids.discard("")
    if not ids:
        return {}
    return dict(session.execute(select(Reviewer.id, Reviewer.username).where(Reviewer.id.in_(ids))).all())


def _preload(session: Session, items: list[ReviewItem]) -> list[GenerationOutput]:
    """Load the items' outputs and requests in two queries instead of two per row: the lazy loads of
    ``item.output`` and ``output.request`` then find them in the session (the page polls every 5 s).
    The caller keeps the returned list while it works: the session holds objects only weakly."""
    ids = [i.output_id for i in items]
    if not ids:
        return []
    return list(
        session.scalars(
            select(GenerationOutput)
            .options(selectinload(GenerationOutput.request))
            .where(GenerationOutput.id.in_(ids))
        )
    )


def state_counts(session: Session, *, include_escalated: bool) -> dict[str, int]:
    """Items per review state (and, for admins, how many open items are escalated)."""
    stmt = select(ReviewItem.state, func.count()).group_by(ReviewItem.state)
    if not include_escalated:
        stmt = stmt.where(ReviewItem.escalated.is_(False))
    counts = {state.value: 0 for state in ReviewState}
    for state, n in session.execute(stmt).all():
        counts[ReviewState(state).value] = int(n)
    if include_escalated:
        counts["escalated"] = int(
            session.scalar(
                select(func.count())
                .select_from(ReviewItem)
                .where(ReviewItem.escalated.is_(True), ReviewItem.state.in_(OPEN_STATES))
            )
            or 0
        )
    return counts


def _sort_key(sort: str) -> Any:
    if sort == "age":
        return lambda r: (r.created_at, r.id)
    if sort == "tenant":
        return lambda r: (r.tenant.casefold(), r.created_at)
    if sort == "score":
        return lambda r: (r.top_score, r.priority)
    return None  # priority: the queue's own order, as claim_next hands items out


def due(item: ReviewItem, deadlines: Mapping[str, Deadline], now: datetime) -> str | None:
    """The review deadline's action and the time left, for a pending item whose policy has one."""
    deadline = deadlines.get(item.output.policy_name)
    if deadline is None or (deadline.action is DeadlineAction.ESCALATE and item.escalated):
        return None
    at = item.created_at + deadline.after
    if at <= now:
        return f"{deadline.action.value}: overdue"
    return f"{deadline.action.value} in {present.age(now - (at - now), now)}"


def queue_view(
    session: Session,
    reviewer: Reviewer,
    *,
    sort: str,
    descending: bool,
    deadlines: Mapping[str, Deadline] | None = None,
    consensus: Mapping[str, cons.Consensus] | None = None,
) -> QueueView:
    now = utcnow()
    items = queue.list_items(
        session=session, states=OPEN_STATES, include_escalated=reviewer.is_admin, limit=QUEUE_LIMIT + 1
    )
    truncated = len(items) > QUEUE_LIMIT
    items = items[:QUEUE_LIMIT]
    loaded = _preload(session, items)
    names = _names(session, {i.claimed_by or "" for i in items})
    counts = (
        cons.verdict_counts(session=session, item_ids=[i.id for i in items]) if consensus and items else {}
    )
    rows = []
    for item in items:
        output = item.output
        wanted = cons.required(item, consensus) if consensus else None
        lapsed = item.state == ReviewState.CLAIMED and (
            item.lease_expires_at is None or item.lease_expires_at <= now
        )
        rows.append(
            QueueRow(
                id=item.id,
                ticket=output.ticket or "",
                tenant=output.request.tenant,
                created_at=item.created_at,
                age=present.age(item.created_at, now),
                state="lapsed" if lapsed else item.state.value,
                claimed_by=names.get(item.claimed_by or "") if not lapsed else None,
                mine=item.claimed_by == reviewer.id and not lapsed,
                escalated=item.escalated,
                appeal=item.appeal,
                prompt=is_prompt_output(output),
                priority=item.priority,
                reasons=present.reason_views(output.reasons),
                top_scores=present.top_scores(output.scores),
                due=due(item, deadlines or {}, now),
                verdicts=f"{counts.get(item.id, 0)} of {wanted.verdicts} verdicts"
                if wanted is not None
                else None,
            )
        )
    key = _sort_key(sort)
    if key is not None:
        # "age, descending" means oldest first, i.e. created_at ascending.
        rows.sort(key=key, reverse=descending != (sort == "age"))
    elif not descending:
        rows.reverse()
    counts = state_counts(session, include_escalated=reviewer.is_admin)
    del loaded
    return QueueView(rows=rows, counts=counts, sort=sort, descending=descending, truncated=truncated)


@dataclass(frozen=True)
class ItemView:
    """Everything the review page shows about one item."""

    id: str
    version: int
    state: str
    escalated: bool
    appeal: bool
    appeal_reason: str | None  # the client's words: untrusted text like the prompt
    prompt_item: bool  # a held (or appealed blocked) prompt: approve runs the generation; no edit
    ticket: str
    tenant: str
    request_id: str
    model_id: str
    policy: str
    policy_version: str
    created_at: datetime
    age: str
    prompt: str
    segments: list[present.Segment]
    generated_text: str
    bars: list[present.ScoreBar]
    reasons: list[present.ReasonView]
    identity_checks: list[present.IdentityCheckView]
    shadow: list[present.ShadowView]
    parameters: list[tuple[str, str]]
    scorers: list[str]
    finish_reason: str
    tokens: tuple[int, int]
    claimed_by: str | None
    mine: bool  # the viewer holds a live claim: the actions are theirs
    lease_expires_at: datetime | None
    decided_by: str | None
    decided_at: datetime | None
    decision_reason: str | None
    edited_text: str | None
    prev_id: str | None
    next_id: str | None


def item_view(
    session: Session,
    reviewer: Reviewer,
    item: ReviewItem,
    policies: Mapping[str, Any],
    identity_terms: Mapping[str, Mapping[str, str]] | None = None,
) -> ItemView:
    now = utcnow()
    output, request = item.output, item.output.request
    lease = item.lease_expires_at
    live = item.state == ReviewState.CLAIMED and lease is not None and lease > now
    names = _names(session, {item.claimed_by or "", item.decided_by or ""})
    policy = policies.get(output.policy_name)
    if policy is not None and getattr(policy, "version", None) != output.policy_version:
        policy = None  # the rules changed since: show only the thresholds the output's reasons recorded
    order = [
        i.id
        for i in queue.list_items(
            session=session, states=OPEN_STATES, include_escalated=reviewer.is_admin, limit=QUEUE_LIMIT
        )
    ]
    position = order.index(item.id) if item.id in order else None
    prev_id = order[position - 1] if position else None
    if position is None:
        next_id = order[0] if order else None
    else:
        next_id = order[position + 1] if position + 1 < len(order) else None
    return ItemView(
        id=item.id,
        version=item.version,
        state=("claimed" if live else "lapsed") if item.state == ReviewState.CLAIMED else item.state.value,
        escalated=item.escalated,
        appeal=item.appeal,
        appeal_reason=item.appeal_reason,
        prompt_item=is_prompt_output(output),
        ticket=output.ticket or "",
        tenant=request.tenant,
        request_id=request.request_id,
        model_id=request.model_id,
        policy=output.policy_name,
        policy_version=output.policy_version,
        created_at=item.created_at,
        age=present.age(item.created_at, now),
        prompt=output.prompt,
        segments=present.segments(output.generated_text, output.spans),
        generated_text=output.generated_text,
        bars=present.score_bars(output.scores, output.reasons, policy),
        reasons=present.reason_views(output.reasons),
        identity_checks=present.identity_check_views(output.identity_checks, identity_terms or {}),
        shadow=present.shadow_views(output.shadow),
        parameters=present.parameter_items(request.parameters),
        scorers=[
            f"{s.get('name', '?')} {s.get('version', '')}".strip()
            for s in (output.scorers or [])
            if isinstance(s, dict)
        ],
        finish_reason=output.finish_reason or "-",
        tokens=(output.prompt_tokens, output.generated_tokens),
        claimed_by=names.get(item.claimed_by or "") if live else None,
        mine=live and item.claimed_by == reviewer.id,
        lease_expires_at=item.lease_expires_at if live else None,
        decided_by=names.get(item.decided_by or ""),
        decided_at=item.decided_at,
        decision_reason=item.decision_reason,
        edited_text=item.edited_text,
        prev_id=prev_id,
        next_id=next_id,
    )
