"""The backtest's reads on SQLite and PostgreSQL: every stored field it needs comes back as recorded (the
JSON columns, the verdict), the window, tenant and policy filters apply, and outputs of requests that did
not complete (a stream cut short) are counted apart, not evaluated."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from gateway.review.backtest_data import Window, recorded_outputs, undecided_count
from gateway.review.prompt_runs import PROMPT_SCREENED
from gateway.review.queue import claim_next, create_review_item, decide
from gateway.review.report_data import rated_items, reviewed_outputs
from gateway.storage.models import GenerationOutput, RequestStatus, Reviewer
from gateway.storage.records import set_request_status
from moderation.identity import NeutralScores
from moderation.policy import NON_FINITE_SCORE
from moderation.types import Action, Span
from tests.support.held import record_one


def _output(
    s: Session,
    *,
    tenant: str,
    policy: str = "default",
    status: RequestStatus = RequestStatus.COMPLETED,
    **kw: object,
) -> GenerationOutput:
    fields: dict[str, object] = {"action": "release", "scores": {}, **kw}
    out = record_one(s, tenant=tenant, text="t", policy_name=policy, policy_version="v", **fields)
    set_request_status(session=s, request=out.request, status=status)
    return out


def test_reads_what_was_recorded_and_filters(db: sessionmaker[Session], add_reviewer: object) -> None:
    reviewer: Reviewer = add_reviewer()  # type: ignore[operator]
    with db() as s, s.begin():
        held = _output(
            s,
            tenant="acme",
            action="hold",
            scores={"toxicity": 0.7, "identity_attack": 0.85},
            reasons=[
                {"category": "identity_attack", "score": 0.85, "threshold": 0.8, "action": "hold"},
                {"category": NON_FINITE_SCORE, "score": 1.0, "threshold": 0.0, "action": "hold"},
            ],
            spans=[{"start": 0, "end": 1, "category": "profanity", "scorer": "wordlist"}],
            identity_checks=[
                {
                    "category": "identity_attack",
                    "original_score": 0.85,
                    "neutral_score": 0.2,
                    "threshold": 0.8,
                    "substituted_terms": ["muslim"],
                    "softened": True,
                    "terms_version": "tv",
                }
            ],
        )
        create_review_item(session=s, output=held)
        _output(s, tenant="globex", scores={"toxicity": 0.1})
        _output(s, tenant="acme", policy="other", scores={"toxicity": 0.2})
        _output(s, tenant="acme", status=RequestStatus.CANCELLED)
    with db() as s, s.begin():
        item = claim_next(session=s, reviewer=reviewer)
        assert item is not None
        decide(
            session=s,
            item_id=item.id,
            reviewer=reviewer,
            expected_version=item.version,
            decision="reject",
            reason="x",
        )
    with db() as s:
        (one,) = recorded_outputs(session=s, window=Window(tenant="acme", policy="default"))
        assert one.action is Action.HOLD and one.verdict == "rejected"
        assert dict(one.scores) == {"toxicity": 0.7, "identity_attack": 0.85}
        assert one.spans == (Span(0, 1, "profanity", "wordlist"),)
        assert one.non_finite and one.neutral == NeutralScores({"identity_attack": 0.2}, ("muslim",), "tv")
        assert len(list(recorded_outputs(session=s, window=Window()))) == 3  # not the cancelled one
        assert undecided_count(session=s, window=Window()) == 1
        assert undecided_count(session=s, window=Window(tenant="globex")) == 0
        assert len(list(recorded_outputs(session=s, window=Window(policy="other")))) == 1
        now = datetime.now(UTC)
        assert not list(recorded_outputs(session=s, window=Window(since=now + timedelta(minutes=5))))
        assert len(list(recorded_outputs(session=s, window=Window(until=now + timedelta(minutes=5))))) == 3
        assert not list(recorded_outputs(session=s, window=Window(until=now - timedelta(hours=1))))


def test_screened_prompts_are_in_neither_the_report_nor_the_backtest(
    db: sessionmaker[Session], add_reviewer: object
) -> None:
    """A held prompt's slot carries the prompt's scores and a verdict on the prompt: counting it as an
    output would move the suggested output thresholds and the backtest's tables."""
    reviewer: Reviewer = add_reviewer()  # type: ignore[operator]
    hold = {"category": "toxicity", "score": 0.9, "threshold": 0.8, "action": "hold"}
    with db() as s, s.begin():
        screened = _output(
            s,
            tenant="acme",
            action="hold",
            scores={"toxicity": 0.9},
            reasons=[{**hold, "category": "prompt:toxicity"}],
            finish_reason=PROMPT_SCREENED,
        )
        create_review_item(session=s, output=screened)
        _output(s, tenant="acme", action="hold", scores={"toxicity": 0.85}, reasons=[hold])
    with db() as s, s.begin():
        item = claim_next(session=s, reviewer=reviewer)
        assert item is not None and item.output_id == screened.id
        decide(
            session=s,
            item_id=item.id,
            reviewer=reviewer,
            expected_version=item.version,
            decision="approve",
            reason="fine prompt",
        )
    with db() as s:
        (backtested,) = recorded_outputs(session=s, window=Window())
        assert dict(backtested.scores) == {"toxicity": 0.85} and backtested.verdict is None
        (reported,) = reviewed_outputs(session=s)
        assert reported.category_scores == {"toxicity": 0.85} and reported.verdict is None
        assert rated_items(session=s) == []
