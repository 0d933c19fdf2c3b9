"""QA sampling and labels on both backends: which outputs are drawn, labels set exactly once (also
under a race), refusals, the audit trail without text, and the report's read of the labels."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from gateway.audit import events
from gateway.audit.chain import verify
from gateway.errors import InvalidArgument, NotFound
from gateway.ops.metrics import QaSampleCollector
from gateway.review import qa
from gateway.review.errors import AlreadyDecided
from gateway.review.report_data import qa_labels
from gateway.storage.base import utcnow
from gateway.storage.models import AuditEvent, GenerationOutput, QaSample, QaState, Reviewer
from moderation.miss_rate import OTHER
from tests.support.held import record_one

SECRET_WORDS = "the unmasked original words"


def record(
    session: Session,
    *,
    action: str = "release",
    policy: str = "default",
    tenant: str = "acme",
    scores: dict[str, float] | None = None,
) -> GenerationOutput:
    return record_one(
        session,
        request_id=f"r-{utcnow().timestamp()}",
        tenant=tenant,
        action=action,
        text=SECRET_WORDS,
        masked_text="the ******** original words" if action == "mask" else None,
        policy_name=policy,
        policy_version="v1",
        scores=scores if scores is not None else {"toxicity": 0.2, "insult": 0.1},
    )


def sample_of(db: sessionmaker[Session], **kwargs: object) -> str:
    with db() as s, s.begin():
        out = record(s, **kwargs)  # type: ignore[arg-type]
        sample = qa.draw(session=s, output=out, rates={str(kwargs.get("policy", "default")): 1.0})
        assert sample is not None
        return sample.id


def test_released_and_masked_outputs_are_drawn_held_and_blocked_never(db: sessionmaker[Session]) -> None:
    with db() as s, s.begin():
        drawn = {
            action: qa.draw(session=s, output=record(s, action=action), rates={"default": 1.0})
            for action in ("release", "mask", "hold", "block")
        }
        other_policy = qa.draw(session=s, output=record(s, policy="lenient"), rates={"default": 1.0})
    assert drawn["release"] is not None and drawn["mask"] is not None
    assert drawn["hold"] is None and drawn["block"] is None and other_policy is None
    with db() as s:
        rows = s.scalars(select(QaSample)).all()
        assert {r.state for r in rows} == {QaState.PENDING} and len(rows) == 2
        assert {r.sample_rate for r in rows} == {1.0}


def test_the_draw_is_the_output_ids_and_the_rate(db: sessionmaker[Session]) -> None:
    with db() as s, s.begin():
        outputs = [record(s) for _ in range(60)]
        drawn = {o.id for o in outputs if qa.draw(session=s, output=o, rates={"default": 0.3})}
    assert drawn == {o.id for o in outputs if qa.draw_value(o.id) < 0.3}
    assert 0 < len(drawn) < 60


def test_a_label_is_final_and_audited_without_text(
    db: sessionmaker[Session], add_reviewer: Callable[..., Reviewer]
) -> None:
    rita, ravi = add_reviewer(username="rita"), add_reviewer(username="ravi")
    sample_id = sample_of(db, action="mask")
    with db() as s, s.begin():
        out = qa.get_sample(session=s, sample_id=sample_id).output
        assert qa.label_choices(out) == ["insult", "toxicity", OTHER]
        label = qa.Label.parse("harmful", ["insult", "insult", OTHER], choices=qa.label_choices(out))
        reviewer = s.get_one(Reviewer, rita.id)
        done = qa.label_sample(session=s, sample_id=sample_id, reviewer=reviewer, label=label)
        assert done.state is QaState.HARMFUL and done.categories == ["insult", OTHER]
    with db() as s, s.begin(), pytest.raises(AlreadyDecided, match="already labelled harmful"):
        fine = qa.Label(harmful=False, categories=())
        qa.label_sample(session=s, sample_id=sample_id, reviewer=s.get_one(Reviewer, ravi.id), label=fine)
    with db() as s:
        sample = s.get_one(QaSample, sample_id)
        assert sample.labelled_by == rita.id and sample.state is QaState.HARMFUL
        (event,) = s.scalars(select(AuditEvent).where(AuditEvent.event_type == events.QA_LABELLED)).all()
        assert event.actor == "reviewer:rita" and event.tenant == "acme" and event.action == "harmful"
        assert event.payload["categories"] == ["insult", OTHER] and event.payload["sample_id"] == sample_id
        assert "words" not in str(event.payload) and "*" not in str(event.payload)
        assert verify(session=s).ok


def test_racing_labels_one_wins(db: sessionmaker[Session], add_reviewer: Callable[..., Reviewer]) -> None:
    reviewers = [add_reviewer(username=f"r{i}") for i in range(4)]
    sample_id = sample_of(db)
    barrier = threading.Barrier(len(reviewers))
    outcomes: list[str] = []

    def label(reviewer_id: str, harmful: bool) -> None:
        with db() as s, s.begin():
            barrier.wait()
            label = qa.Label(harmful=harmful, categories=("toxicity",) if harmful else ())
            try:
                qa.label_sample(
                    session=s, sample_id=sample_id, reviewer=s.get_one(Reviewer, reviewer_id), label=label
                )
                outcomes.append("won")
            except AlreadyDecided:
                outcomes.append("lost")

    threads = [threading.Thread(target=label, args=(r.id, i % 2 == 0)) for i, r in enumerate(reviewers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(outcomes) == ["lost", "lost", "lost", "won"]
    with db() as s:
        events_ = s.scalars(select(AuditEvent).where(AuditEvent.event_type == events.QA_LABELLED)).all()
        assert len(events_) == 1


@pytest.mark.parametrize(
    ("verdict", "categories", "message"),
    [
        ("bad", [], "label: must be harmful or fine"),
        ("fine", ["toxicity"], "a fine label names no categories"),
        ("harmful", [], "needs at least one category"),
        ("harmful", ["threat"], "unknown for this output: 'threat'"),
        ("harmful", ["<script>"], "unknown for this output"),
    ],
)
def test_bad_labels_are_refused(verdict: str, categories: list[str], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        qa.Label.parse(verdict, categories, choices=["toxicity", "insult", OTHER])


def test_unknown_sample_is_not_found(db: sessionmaker[Session]) -> None:
    with db() as s, pytest.raises(NotFound):
        qa.get_sample(session=s, sample_id="nope")


def test_the_report_reads_labels_in_the_window(
    db: sessionmaker[Session], add_reviewer: Callable[..., Reviewer]
) -> None:
    rita = add_reviewer(username="rita")
    ids = [sample_of(db, scores={"toxicity": 0.1 * i}) for i in range(3)]
    pending = sample_of(db, tenant="other")
    assert pending
    with db() as s, s.begin():
        reviewer = s.get_one(Reviewer, rita.id)
        qa.label_sample(session=s, sample_id=ids[0], reviewer=reviewer, label=qa.Label(True, ("toxicity",)))
        qa.label_sample(session=s, sample_id=ids[1], reviewer=reviewer, label=qa.Label(False, ()))
    with db() as s:
        labels = list(qa_labels(session=s))
        assert sorted((tuple(lb.harmful_categories), lb.sample_rate) for lb in labels) == [
            ((), 1.0),
            (("toxicity",), 1.0),
        ]  # the pending ones are not labels
        assert list(qa_labels(session=s, tenant="other")) == []
        assert list(qa_labels(session=s, since=utcnow() + timedelta(minutes=1))) == []
        assert qa.state_counts(session=s) == {"pending": 2, "harmful": 1, "fine": 1}
        assert [p.id for p in qa.pending(session=s)] == [ids[2], pending]


def test_the_metrics_count_samples_by_state(
    db: sessionmaker[Session], add_reviewer: Callable[..., Reviewer]
) -> None:
    rita = add_reviewer(username="rita")
    first, _ = sample_of(db), sample_of(db)
    with db() as s, s.begin():
        fine = qa.Label(harmful=False, categories=())
        qa.label_sample(session=s, sample_id=first, reviewer=s.get_one(Reviewer, rita.id), label=fine)
    (family,) = QaSampleCollector(db, min_interval_s=0).collect()
    assert family.name == "modgate_qa_samples"
    assert {s.labels["state"]: s.value for s in family.samples} == {"pending": 1, "harmful": 0, "fine": 1}
