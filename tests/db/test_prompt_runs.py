"""Held prompts in the queue and their runs, on SQLite and PostgreSQL: approval writes the run in the
decision's transaction; a claim is a lease (one worker at a time, again once it lapses); a run is done
once; an edit is refused; the ticket's result follows the run."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from gateway.audit import events
from gateway.review.deadlines import Deadline, DeadlineAction
from gateway.review.errors import InvalidDecision
from gateway.review.prompt_runs import AlreadyRun, claim_due, mark_done
from gateway.review.queue import apply_deadlines, claim_next, decide, get_result
from gateway.review.results import ResultState
from gateway.storage.base import utcnow
from gateway.storage.models import (
    AuditEvent,
    GenerationOutput,
    PromptRun,
    PromptRunState,
    Reviewer,
    ReviewItem,
)
from tests.support.held import hold_output, record_one

LEASE = timedelta(seconds=60)


def hold_prompt(db: sessionmaker[Session], request_id: str = "req-prompt") -> ReviewItem:
    """A held prompt as the pipeline leaves it: no text, finish reason `prompt_screened`."""
    with db() as s, s.begin():
        item = hold_output(
            s,
            request_id=request_id,
            text="",
            prompt="a screened prompt",
            finish_reason="prompt_screened",
            parameters={"seed": 5, "max_new_tokens": 4, "num_return_sequences": 1},
        )
        s.refresh(item, ["output"])
        return item


def claim_and_decide(
    db: sessionmaker[Session], reviewer: Reviewer, decision: str, **kw: object
) -> ReviewItem:
    with db() as s, s.begin():
        item = claim_next(session=s, reviewer=reviewer, lease_seconds=60)
        assert item is not None
        return decide(
            session=s,
            item_id=item.id,
            reviewer=reviewer,
            expected_version=item.version,
            decision=decision,
            **kw,
        )  # type: ignore[arg-type]


def test_approval_queues_one_run_and_claims_are_leases(
    db: sessionmaker[Session], add_reviewer: Callable[..., Reviewer]
) -> None:
    held = hold_prompt(db)
    reviewer = add_reviewer()
    claim_and_decide(db, reviewer, "approve")
    with db() as s:
        (run,) = s.scalars(select(PromptRun)).all()
        assert run.state is PromptRunState.PENDING and run.attempts == 0
        assert get_result(session=s, ticket=held.output.ticket).state is ResultState.PENDING
    now = utcnow()
    with db() as s, s.begin():
        (claimed,) = claim_due(session=s, now=now, limit=4, lease=LEASE)
    assert claimed.prompt == "a screened prompt" and claimed.attempts == 1 and claimed.parameters["seed"] == 5
    with db() as s, s.begin():
        assert claim_due(session=s, now=now + timedelta(seconds=30), limit=4, lease=LEASE) == []
    with db() as s, s.begin():  # the first worker died: the lease lapses and the run is due again
        (again,) = claim_due(session=s, now=now + timedelta(seconds=61), limit=4, lease=LEASE)
    assert again.id == claimed.id and again.attempts == 2

    with db() as s, s.begin():  # the run's outcome: a request with one released output
        output = record_one(s, request_id="req-prompt", prompt="a screened prompt", text="a generated answer")
        request = output.request
        mark_done(session=s, run=again, generation_request_id=request.id, output_id=output.id, now=utcnow())
    with pytest.raises(AlreadyRun), db() as s, s.begin():  # the late first worker: not recorded twice
        mark_done(session=s, run=claimed, generation_request_id=request.id, output_id=output.id, now=utcnow())
    with db() as s:
        view = get_result(session=s, ticket=held.output.ticket)
        assert (view.state, view.text) == (ResultState.APPROVED, "a generated answer")
        assert claim_due(session=s, now=now + timedelta(days=1), limit=4, lease=LEASE) == []


def test_a_prompt_is_not_edited_and_rejection_queues_nothing(
    db: sessionmaker[Session], add_reviewer: Callable[..., Reviewer]
) -> None:
    held = hold_prompt(db)
    reviewer = add_reviewer()
    with pytest.raises(InvalidDecision, match="not edited"):
        claim_and_decide(db, reviewer, "edit", edited_text="another prompt")
    claim_and_decide(db, reviewer, "reject", reason="abusive")
    with db() as s:
        assert s.scalars(select(PromptRun)).all() == []
        view = get_result(session=s, ticket=held.output.ticket)
        assert (view.state, view.text) == (ResultState.REJECTED, None)


def test_claimers_take_different_runs(
    db: sessionmaker[Session], add_reviewer: Callable[..., Reviewer]
) -> None:
    reviewer = add_reviewer()
    for n in range(3):
        hold_prompt(db, request_id=f"req-{n}")
        claim_and_decide(db, reviewer, "approve")
    now = utcnow()
    taken: list[int] = []
    for _ in range(4):
        with db() as s, s.begin():
            taken += [c.id for c in claim_due(session=s, now=now, limit=2, lease=LEASE)]
    assert len(taken) == 3 and len(set(taken)) == 3


def test_an_approve_deadline_queues_the_generation_and_releases_nothing(db: sessionmaker[Session]) -> None:
    held = hold_prompt(db)  # policy "default"
    later = utcnow() + timedelta(hours=2)
    with db() as s, s.begin():
        done = apply_deadlines(
            session=s,
            deadlines={"default": Deadline(after=timedelta(hours=1), action=DeadlineAction.APPROVE)},
            now=later,
        )
    assert done == [("default", DeadlineAction.APPROVE)]
    with db() as s:
        (run,) = s.scalars(select(PromptRun)).all()
        assert run.state is PromptRunState.PENDING
        output = s.get_one(GenerationOutput, held.output_id)
        assert output.released_text is None
        assert get_result(session=s, ticket=held.output.ticket).state is ResultState.PENDING
        released = s.scalars(select(AuditEvent).where(AuditEvent.event_type == events.RESULT_RELEASED)).all()
        assert released == []
