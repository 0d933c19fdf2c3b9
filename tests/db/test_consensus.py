"""Several reviewers per item: verdicts are stored, each reviewer gives one, nothing leaves before the
final decision, the final decision is made once by `system:consensus`, and disagreement escalates to an
admin who decides alone. SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from itertools import count

import pytest
from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from gateway import audit
from gateway.cli import cli
from gateway.review import StaleVersion, claim_next, decide
from gateway.review.consensus import CONSENSUS_ACTOR, Consensus, ConsensusRule, not_given_by, verdicts_of
from gateway.review.deadlines import Deadline, DeadlineAction
from gateway.review.queue import apply_deadlines
from gateway.review.report_data import rated_items, reviewed_outputs
from gateway.storage.models import (
    AuditEvent,
    GenerationOutput,
    ModerationAction,
    OutputStatus,
    Reviewer,
    ReviewerRole,
    ReviewerVerdict,
    ReviewItem,
    ReviewState,
    WebhookDelivery,
)
from gateway.webhooks.endpoints import create_endpoint
from moderation.report import build_report
from tests.support.held import hold_output

T0 = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)
TEXT = "the withheld words"
AddReviewer = Callable[..., Reviewer]
_n = count(1)


def two(rule: ConsensusRule, **kwargs: object) -> dict[str, Consensus]:
    return {"default": Consensus(verdicts=2, rule=rule, **kwargs)}  # type: ignore[arg-type]


def held(
    db: sessionmaker[Session], *, action: str = "hold", categories: tuple[str, ...] = ("insult",)
) -> str:
    reasons = [{"category": c, "score": 0.8, "threshold": 0.5, "action": action} for c in categories]
    with db() as s, s.begin():
        item = hold_output(
            s, request_id=f"req-{next(_n)}", text=TEXT, reasons=reasons, scores={"insult": 0.8}
        )
        if action == "block":
            item.output.action = ModerationAction.BLOCK
            item.appeal = True
        return item.id


def verdict(
    db: sessionmaker[Session],
    reviewer: Reviewer,
    decision: str,
    consensus: dict[str, Consensus],
    *,
    edited_text: str | None = None,
    at: int = 0,
) -> ReviewItem:
    now = T0 + timedelta(minutes=at)
    with db() as s, s.begin():
        item = claim_next(session=s, reviewer=reviewer, lease_seconds=60, now=now)
        assert item is not None, f"{reviewer.username} was offered nothing"
        decided = decide(
            session=s,
            item_id=item.id,
            reviewer=reviewer,
            expected_version=item.version,
            decision=decision,
            edited_text=edited_text,
            reason=f"{reviewer.username} says {decision}",
            now=now + timedelta(seconds=5),
            consensus=consensus,
        )
        s.refresh(decided, ["output"])
        s.expunge_all()
        return decided


def output(db: sessionmaker[Session], item_id: str) -> GenerationOutput:
    with db() as s:
        item = s.get_one(ReviewItem, item_id)
        return s.get_one(GenerationOutput, item.output_id)


def events(db: sessionmaker[Session]) -> list[AuditEvent]:
    with db() as s:
        return audit.query(session=s, limit=1000)


def webhooks(db: sessionmaker[Session]) -> list[WebhookDelivery]:
    with db() as s:
        return list(s.scalars(select(WebhookDelivery)))


@pytest.fixture
def subscribed(db: sessionmaker[Session]) -> None:
    with db() as s, s.begin():
        create_endpoint(
            session=s,
            tenant="acme",
            url="https://hooks.example/modgate",
            events=["review.decided", "appeal.decided"],
            actor="test",
        )


@pytest.mark.usefixtures("subscribed")
def test_two_approvals_release_once_and_nothing_leaves_before(
    db: sessionmaker[Session], add_reviewer: AddReviewer
) -> None:
    item_id = held(db)
    alice, bob = add_reviewer(), add_reviewer()
    rule = two(ConsensusRule.UNANIMOUS)

    first = verdict(db, alice, "approve", rule)
    assert first.state == ReviewState.PENDING and first.claimed_by is None and first.decided_at is None
    assert output(db, item_id).status == OutputStatus.HELD and output(db, item_id).released_text is None
    assert webhooks(db) == [], "the tenant hears only the final outcome"
    assert [e.event_type for e in events(db)][-1] == "review.verdict"
    with db() as s, s.begin():
        assert claim_next(session=s, reviewer=alice, lease_seconds=60, now=T0 + timedelta(minutes=1)) is None

    final = verdict(db, bob, "approve", rule, at=2)
    assert final.state == ReviewState.APPROVED and final.decided_by is None
    assert final.decision_reason == "consensus (unanimous, 2 of 2 verdicts: 2 approve)"
    out = output(db, item_id)
    assert out.status == OutputStatus.APPROVED and out.released_text == TEXT
    [hook] = webhooks(db)
    assert hook.event_type == "review.decided" and json.loads(hook.body)["state"] == "approved"
    kinds = [(e.event_type, e.actor) for e in events(db) if e.event_type.startswith(("review.", "result."))]
    assert kinds[-3:] == [
        ("review.verdict", f"reviewer:{bob.username}"),
        ("review.approved", CONSENSUS_ACTOR),
        ("result.released", CONSENSUS_ACTOR),
    ]
    assert sum(e.event_type == "review.approved" for e in events(db)) == 1


def test_a_reviewer_gives_one_verdict_and_the_next_reviewer_gets_the_item(
    db: sessionmaker[Session], add_reviewer: AddReviewer
) -> None:
    first_id, second_id = held(db), held(db)
    alice, bob = add_reviewer(), add_reviewer()
    rule = two(ConsensusRule.MAJORITY)
    a1 = verdict(db, alice, "reject", rule)
    a2 = verdict(db, alice, "reject", rule, at=1)
    assert {a1.id, a2.id} == {first_id, second_id}
    with db() as s, s.begin():
        assert claim_next(session=s, reviewer=alice, lease_seconds=60, now=T0 + timedelta(minutes=3)) is None
    assert verdict(db, bob, "reject", rule, at=4).state == ReviewState.REJECTED
    with db() as s:
        assert len(s.scalars(select(ReviewerVerdict)).all()) == 3


@pytest.mark.usefixtures("subscribed")
def test_disagreement_escalates_to_an_admin_who_decides_alone(
    db: sessionmaker[Session], add_reviewer: AddReviewer
) -> None:
    item_id = held(db)
    alice, bob, carol = add_reviewer(), add_reviewer(), add_reviewer()
    admin = add_reviewer(role=ReviewerRole.ADMIN)
    rule = two(ConsensusRule.UNANIMOUS)
    verdict(db, alice, "approve", rule)
    escalated = verdict(db, bob, "reject", rule, at=1)
    assert escalated.state == ReviewState.PENDING and escalated.escalated
    assert output(db, item_id).status == OutputStatus.HELD and webhooks(db) == []
    [esc] = [e for e in events(db) if e.event_type == "review.escalated"]
    assert esc.actor == CONSENSUS_ACTOR and "1 approve, 1 reject" in esc.payload["reason"]
    with db() as s, s.begin():
        assert claim_next(session=s, reviewer=carol, lease_seconds=60, now=T0 + timedelta(minutes=2)) is None
        names = [(name, v.decision) for name, v in verdicts_of(session=s, item_id=item_id)]
        assert names == [(alice.username, "approve"), (bob.username, "reject")]

    final = verdict(db, admin, "reject", rule, at=3)  # an escalated item: the admin's decision is final
    assert final.state == ReviewState.REJECTED and final.decided_by == admin.id
    assert output(db, item_id).released_text is None
    [hook] = webhooks(db)
    assert json.loads(hook.body)["state"] == "rejected"


def test_an_admin_who_gave_a_verdict_cannot_settle_the_escalation(
    db: sessionmaker[Session], add_reviewer: AddReviewer
) -> None:
    held(db)
    admin, bob = add_reviewer(role=ReviewerRole.ADMIN), add_reviewer()
    rule = two(ConsensusRule.UNANIMOUS)
    verdict(db, admin, "approve", rule)
    assert verdict(db, bob, "reject", rule, at=1).escalated
    with db() as s, s.begin():
        assert claim_next(session=s, reviewer=admin, lease_seconds=60, now=T0 + timedelta(minutes=2)) is None
    other_admin = add_reviewer(role=ReviewerRole.ADMIN)
    assert verdict(db, other_admin, "approve", rule, at=3).state == ReviewState.APPROVED


def test_any_reject_rejects_on_one_reject(db: sessionmaker[Session], add_reviewer: AddReviewer) -> None:
    item_id = held(db)
    alice, bob = add_reviewer(), add_reviewer()
    rule = two(ConsensusRule.ANY_REJECT)
    verdict(db, alice, "reject", rule)
    final = verdict(db, bob, "approve", rule, at=1)
    assert final.state == ReviewState.REJECTED and not final.escalated
    assert output(db, item_id).released_text is None


def test_majority_of_three(db: sessionmaker[Session], add_reviewer: AddReviewer) -> None:
    item_id = held(db)
    rule = {"default": Consensus(verdicts=3, rule=ConsensusRule.MAJORITY)}
    verdict(db, add_reviewer(), "approve", rule)
    assert verdict(db, add_reviewer(), "reject", rule, at=1).state == ReviewState.PENDING
    final = verdict(db, add_reviewer(), "approve", rule, at=2)
    assert final.state == ReviewState.APPROVED
    assert final.decision_reason == "consensus (majority, 3 of 3 verdicts: 2 approve, 1 reject)"
    assert output(db, item_id).released_text == TEXT


def test_agreeing_edits_release_the_edit_and_the_audit_never_holds_withheld_text(
    db: sessionmaker[Session], add_reviewer: AddReviewer
) -> None:
    item_id = held(db)
    rule = two(ConsensusRule.UNANIMOUS)
    first = verdict(db, add_reviewer(), "edit", rule, edited_text="a kinder text")
    assert first.state == ReviewState.PENDING
    payloads = json.dumps([e.payload for e in events(db)])
    assert "a kinder text" not in payloads and hashlib.sha256(b"a kinder text").hexdigest() not in payloads
    final = verdict(db, add_reviewer(), "edit", rule, edited_text="a kinder text", at=1)
    assert final.state == ReviewState.EDITED and final.edited_text == "a kinder text"
    assert output(db, item_id).released_text == "a kinder text"
    assert TEXT not in json.dumps([e.payload for e in events(db)])


def test_an_edit_and_an_approve_differ_on_the_text_and_escalate(
    db: sessionmaker[Session], add_reviewer: AddReviewer
) -> None:
    item_id = held(db)
    rule = two(ConsensusRule.ANY_REJECT)
    verdict(db, add_reviewer(), "edit", rule, edited_text="a kinder text")
    assert verdict(db, add_reviewer(), "approve", rule, at=1).escalated
    assert output(db, item_id).status == OutputStatus.HELD


def test_the_table_applies_only_to_its_actions_and_categories(
    db: sessionmaker[Session], add_reviewer: AddReviewer
) -> None:
    held(db, categories=("insult",))
    appeal_id = held(db, action="block", categories=("threat",))
    rule = two(ConsensusRule.UNANIMOUS, for_actions=frozenset({"block"}))
    reviewer = add_reviewer()
    decided = [verdict(db, reviewer, "approve", rule), verdict(db, reviewer, "approve", rule, at=1)]
    states = {d.id: d.state for d in decided}
    assert states[appeal_id] == ReviewState.PENDING, "the appeal needs a second verdict"
    assert [s for i, s in states.items() if i != appeal_id] == [ReviewState.APPROVED], "one decision"

    only_threats = two(ConsensusRule.UNANIMOUS, for_categories=frozenset({"threat"}))
    held(db, categories=("insult", "threat"))
    held(db, categories=("insult",))
    other = add_reviewer()
    results = sorted(verdict(db, other, "approve", only_threats, at=i).state.value for i in (2, 3, 4))
    # the appeal (a threat) gets its second verdict, the insult+threat one its first, the insult one is final
    assert results == ["approved", "approved", "pending"]


def test_a_stale_version_gives_no_verdict(db: sessionmaker[Session], add_reviewer: AddReviewer) -> None:
    held(db)
    alice = add_reviewer()
    with db() as s, s.begin():
        item = claim_next(session=s, reviewer=alice, lease_seconds=60, now=T0)
        assert item is not None
        with pytest.raises(StaleVersion):
            decide(
                session=s,
                item_id=item.id,
                reviewer=alice,
                expected_version=item.version - 1,
                decision="approve",
                now=T0,
                consensus=two(ConsensusRule.UNANIMOUS),
            )
    with db() as s:
        assert s.scalars(select(ReviewerVerdict)).all() == []


def test_the_report_reads_the_verdicts_for_agreement(
    db: sessionmaker[Session], add_reviewer: AddReviewer, db_url: str
) -> None:
    rule = two(ConsensusRule.UNANIMOUS)
    alice, bob = add_reviewer(), add_reviewer()
    for first, second in (("approve", "approve"), ("reject", "reject"), ("approve", "reject")):
        held(db)
        verdict(db, alice, first, rule)
        verdict(db, bob, second, rule)
    held(db)
    verdict(db, alice, "approve", rule)  # one verdict so far: no agreement datum
    with db() as s:
        rated = rated_items(session=s)
        assert sorted(len(r.verdicts) for r in rated) == [1, 2, 2, 2]
        report = build_report(reviewed_outputs(session=s), rated=rated)
    # AA, RR, AR: raw 2/3; kappa: first A,R,A, second A,R,R: p_o = 2/3, p_e = 2/3*1/3 + 1/3*2/3 = 4/9,
    # kappa = (2/3 - 4/9) / (5/9) = 0.4; alpha: o_AA = o_RR = 2, o_AR = o_RA = 1, n_A = n_R = 3, n = 6:
    # D_o = 2/6, D_e = 2*3*3 / (6*5) = .6, alpha = 1 - (1/3)/.6 = 4/9.
    [every, insult] = report.agreement
    assert (every.category, insult.category, every.items) == ("(all)", "insult", 3)
    assert every.raw_agreement == pytest.approx(2 / 3)
    assert every.cohen_kappa == pytest.approx(0.4)
    assert every.krippendorff_alpha == pytest.approx(4 / 9)

    args = ["policy", "--database-url", db_url, "report"]
    shown = CliRunner().invoke(cli, [*args, "--json"], env={"MODGATE_CONFIG": ""})
    assert shown.exit_code == 0, shown.output
    rows = json.loads(shown.stdout)["agreement"]
    assert [(r["category"], r["items"], r["verdicts"]) for r in rows] == [("(all)", 3, 6), ("insult", 3, 6)]
    assert rows[0]["cohen_kappa"] == pytest.approx(0.4)
    table = CliRunner().invoke(cli, args, env={"MODGATE_CONFIG": ""}).stdout
    assert "agreement between reviewers" in table and "66.7%" in table


def test_an_approve_deadline_never_overrides_a_reviewers_reject_or_edit(
    db: sessionmaker[Session], add_reviewer: AddReviewer
) -> None:
    held(db), held(db), held(db)
    rule = two(ConsensusRule.UNANIMOUS)
    alice = add_reviewer()
    given = {verdict(db, alice, "reject", rule).id: "reject"}
    given[verdict(db, alice, "edit", rule, edited_text="a kinder text", at=1).id] = "edit"
    given[verdict(db, alice, "approve", rule, at=2).id] = "approve"
    later = T0 + timedelta(days=1)
    with db() as s, s.begin():
        done = apply_deadlines(
            session=s, deadlines={"default": Deadline(timedelta(hours=1), DeadlineAction.APPROVE)}, now=later
        )
    assert done == [("default", DeadlineAction.APPROVE)]
    by_decision = {d: i for i, d in given.items()}
    for objected in ("reject", "edit"):
        assert output(db, by_decision[objected]).status == OutputStatus.HELD, "waits for its second verdict"
    assert output(db, by_decision["approve"]).released_text == TEXT


def test_reviewers_racing_through_a_consensus_queue_decide_each_item_once(
    db: sessionmaker[Session], add_reviewer: AddReviewer
) -> None:
    """Four reviewer threads work a queue whose items need 3 verdicts each, until nothing is left for
    them: every item ends with 3 verdicts from 3 different reviewers and exactly one final decision."""
    items = {held(db) for _ in range(6)}
    reviewers = [add_reviewer() for _ in range(4)]
    rule = {"default": Consensus(verdicts=3, rule=ConsensusRule.ANY_REJECT)}
    barrier = threading.Barrier(len(reviewers))

    def left_for(s: Session, reviewer: Reviewer) -> bool:
        """Open items this reviewer has not given a verdict on (claimed by someone else right now)."""
        open_items = select(ReviewItem.id).where(
            ReviewItem.state.in_([ReviewState.PENDING, ReviewState.CLAIMED]), not_given_by(reviewer)
        )
        return s.execute(open_items.limit(1)).first() is not None

    def work(i: int) -> int:
        barrier.wait()
        given = 0
        while True:
            with db() as s, s.begin():
                item = claim_next(session=s, reviewer=reviewers[i], lease_seconds=60, now=T0)
                if item is None:
                    if left_for(s, reviewers[i]):  # others hold them now; they come back after their verdict
                        time.sleep(0.01)
                        continue
                    return given
                decide(
                    session=s,
                    item_id=item.id,
                    reviewer=reviewers[i],
                    expected_version=item.version,
                    decision="approve" if (i + given) % 3 else "reject",
                    reason=None,
                    now=T0,
                    consensus=rule,
                )
            given += 1

    with ThreadPoolExecutor(max_workers=len(reviewers)) as pool:
        given = list(pool.map(work, range(len(reviewers))))
    assert sum(given) == 3 * len(items)
    with db() as s:
        per_item = Counter(s.scalars(select(ReviewerVerdict.item_id)).all())
        assert per_item == dict.fromkeys(items, 3)
        pairs = s.execute(select(ReviewerVerdict.item_id, ReviewerVerdict.reviewer_id)).all()
        assert len(set(pairs)) == len(pairs)
        states = set(s.scalars(select(ReviewItem.state)).all())
        assert states <= {ReviewState.APPROVED, ReviewState.REJECTED}
    finals = Counter(
        e.payload["item_id"] for e in events(db) if e.event_type in ("review.approved", "review.rejected")
    )
    assert finals == dict.fromkeys(items, 1)
