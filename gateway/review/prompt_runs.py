"""Held prompts in the review queue, and the runs of the approved ones (the rows the worker in
`gateway/pipeline/prompt_worker.py` claims).

A review item is a *prompt item* when its output is a screened prompt's output slot (finish reason
`prompt_screened`: nothing was generated). A reviewer approves or rejects it (an edit is refused: there is
no output to edit, and rewriting the client's prompt is not the reviewer's call). Approval writes a
`PromptRun` in the decision's own transaction; the worker generates from it, and the run's request
(recorded like any call: moderated, possibly held or blocked again) is what the original ticket's result
then shows. Rejection is final. Functions take `session=` and never commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from gateway.audit import append as audit_append
from gateway.audit import events
from gateway.storage.engine import is_postgresql
from gateway.storage.models import GenerationOutput, GenerationRequest, PromptRun, PromptRunState

PROMPT_SCREENED = "prompt_screened"  # the finish reason of a screened prompt's outputs
MAX_ERROR_CHARS = 300
ACTOR = "gateway"


class AlreadyRun(Exception):
    """The run was finished by another worker (its lease ran out while this one generated): this
    worker's outcome must not be recorded too."""


def is_prompt_output(output: GenerationOutput) -> bool:
    return output.finish_reason == PROMPT_SCREENED


def settle_prompt(*, session: Session, output: GenerationOutput, approved: bool, now: datetime) -> None:
    """The output side of a decision on a prompt item: nothing is released (there is no text); an
    approval queues the generation, in the caller's transaction."""
    output.released_text = None
    if approved:
        session.add(
            PromptRun(
                output_id=output.id,
                state=PromptRunState.PENDING,
                attempts=0,
                next_attempt_at=now,
                created_at=now,
                updated_at=now,
            )
        )
        session.flush()


def run_of(*, session: Session, output: GenerationOutput) -> PromptRun | None:
    return session.scalars(select(PromptRun).where(PromptRun.output_id == output.id)).one_or_none()


def generated_output(*, session: Session, output: GenerationOutput) -> GenerationOutput | None:
    """The output the approved prompt's run generated (None while it has not run)."""
    run = run_of(session=session, output=output)
    if run is None or run.state != PromptRunState.DONE or run.generation_request_id is None:
        return None
    return session.scalars(
        select(GenerationOutput).where(GenerationOutput.generation_request_id == run.generation_request_id)
    ).first()


@dataclass(frozen=True)
class ClaimedRun:
    """What the worker needs to generate an approved prompt, as plain data."""

    id: int
    ticket: str
    request_id: str
    tenant: str
    api_key_id: str | None
    policy: str
    prompt: str
    sequence_index: int
    parameters: dict[str, Any]
    attempts: int


def claim_due(*, session: Session, now: datetime, limit: int, lease: timedelta) -> list[ClaimedRun]:
    """Claims up to `limit` due pending runs, oldest first: counts the attempt and moves
    `next_attempt_at` a lease ahead, so no other worker takes them while they run, and a run whose worker
    died falls due again. `FOR UPDATE SKIP LOCKED` on PostgreSQL (replicas claim different rows); on
    SQLite the writer lock serialises claimers, and the conditional UPDATE keeps it exact anyway."""
    r = PromptRun
    stmt = (
        select(r.id, r.attempts, GenerationOutput, GenerationRequest)
        .join(GenerationOutput, GenerationOutput.id == r.output_id)
        .join(GenerationRequest, GenerationRequest.id == GenerationOutput.generation_request_id)
        .where(r.state == PromptRunState.PENDING, r.next_attempt_at <= now)
        .order_by(r.id)
        .limit(limit)
    )
    if is_postgresql(session):
        stmt = stmt.with_for_update(skip_locked=True, of=r)
    claimed: list[ClaimedRun] = []
    for run_id, attempts, output, request in session.execute(stmt).all():
        taken = session.execute(
            update(r)
            .where(r.id == run_id, r.state == PromptRunState.PENDING, r.next_attempt_at <= now)
            .values(attempts=r.attempts + 1, next_attempt_at=now + lease, updated_at=now)
            .returning(r.id)
        ).one_or_none()
        if taken is not None:
            claimed.append(
                ClaimedRun(
                    id=run_id,
                    ticket=output.ticket or "",
                    request_id=request.request_id,
                    tenant=request.tenant,
                    api_key_id=request.api_key_id,
                    policy=output.policy_name,
                    prompt=output.prompt,
                    sequence_index=output.sequence_index,
                    parameters=dict(request.parameters or {}),
                    attempts=attempts + 1,
                )
            )
    return claimed


def mark_done(
    *, session: Session, run: ClaimedRun, generation_request_id: str, output_id: str, now: datetime
) -> None:
    """In the transaction that records the run's outcome: the run is done, exactly once (raises
    AlreadyRun, rolling that transaction back, when another worker finished it first)."""
    r = PromptRun
    done = session.execute(
        update(r)
        .where(r.id == run.id, r.state == PromptRunState.PENDING)
        .values(state=PromptRunState.DONE, generation_request_id=generation_request_id, updated_at=now)
        .returning(r.id)
    ).one_or_none()
    if done is None:
        raise AlreadyRun(f"prompt run {run.id} was already done")
    audit_append(
        session=session,
        event_type=events.PROMPT_GENERATED,
        actor=ACTOR,
        tenant=run.tenant,
        request_id=run.request_id,
        ticket=run.ticket,
        payload={"prompt_run": run.id, "generation_request": generation_request_id, "output": output_id},
    )


def retry_later(*, session: Session, run_id: int, error: str, at: datetime) -> None:
    """A failed run (the policy is gone, generation failed) is tried again at `at`."""
    session.execute(
        update(PromptRun)
        .where(PromptRun.id == run_id, PromptRun.state == PromptRunState.PENDING)
        .values(next_attempt_at=at, last_error=error[:MAX_ERROR_CHARS], updated_at=at)
    )
