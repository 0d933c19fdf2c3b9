"""The QA queue: released outputs drawn into the QA sample (gateway/review/qa.py), labelled harmful or
fine.

Separate from the held-item queue: the client already has these texts, so there is no claim or lease
and nothing waits on a label; a label only measures the policy (the miss rate in the policy report).
"Label next" opens the oldest unlabelled sample; two reviewers who open the same one both see it, and
the second to submit gets a 409 page saying it was labelled meanwhile (labels are final). The page
shows the text the client received (for a masked output, the masked text), never anything withheld.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response

from gateway.errors import InvalidArgument
from gateway.review import qa
from gateway.storage.base import utcnow
from gateway.storage.models import QaSample, Reviewer
from gateway.web import present
from gateway.web.base import BaseView, record_id_in_path

QUEUE_ROWS = 100


def sample_id_of(request: Request) -> str:
    return record_id_in_path(request, "sample_id", "no such QA sample")


@dataclass(frozen=True)
class QaRow:
    id: str
    policy: str
    tenant: str
    action: str
    age: str
    created_at: datetime
    top_scores: list[tuple[str, float]]


@dataclass(frozen=True)
class QaQueueView:
    counts: dict[str, int]
    rows: list[QaRow]


@dataclass(frozen=True)
class SampleView:
    id: str
    state: str
    policy: str
    policy_version: str
    sample_rate: float
    tenant: str
    action: str
    prompt: str
    released_text: str
    bars: list[present.ScoreBar]
    choices: list[str]
    categories: list[str]
    labelled_by: str | None
    labelled_at: datetime | None
    created_at: datetime


def _row(sample: QaSample, now: datetime) -> QaRow:
    output = sample.output
    return QaRow(
        id=sample.id,
        policy=sample.policy_name,
        tenant=output.request.tenant,
        action=output.action.value,
        age=present.age(sample.created_at, now),
        created_at=sample.created_at,
        top_scores=present.top_scores(output.scores),
    )


def _sample_view(session: Session, sample: QaSample) -> SampleView:
    output = sample.output
    labeller = session.get(Reviewer, sample.labelled_by) if sample.labelled_by else None
    return SampleView(
        id=sample.id,
        state=sample.state.value,
        policy=sample.policy_name,
        policy_version=output.policy_version,
        sample_rate=sample.sample_rate,
        tenant=output.request.tenant,
        action=output.action.value,
        prompt=output.prompt,
        released_text=output.released_text or "",  # what the client got; a sample is released by definition
        bars=present.score_bars(output.scores, output.reasons),
        choices=qa.label_choices(output),
        categories=list(sample.categories or []),
        labelled_by=labeller.username if labeller else None,
        labelled_at=sample.labelled_at,
        created_at=sample.created_at,
    )


class QaQueuePage(BaseView):
    """GET /qa: counts by state and the oldest unlabelled samples."""

    async def get(self, request: Request) -> Response:
        def work(session: Session, reviewer: Reviewer) -> QaQueueView:
            now = utcnow()
            rows = [_row(s, now) for s in qa.pending(session=session, limit=QUEUE_ROWS)]
            return QaQueueView(counts=qa.state_counts(session=session), rows=rows)

        view = await self.db(request, work)
        return self.render(request, "qa.html", {"view": view})


class QaNext(BaseView):
    """GET /qa/next: the oldest unlabelled sample, or back to /qa when there is none."""

    async def get(self, request: Request) -> Response:
        def work(session: Session, reviewer: Reviewer) -> str | None:
            first = qa.pending(session=session, limit=1)
            return first[0].id if first else None

        sample_id = await self.db(request, work)
        if sample_id is None:
            return self.redirect(request, "/qa", flash="No QA samples to label right now.")
        return self.redirect(request, f"/qa/{sample_id}")


class QaSamplePage(BaseView):
    """GET /qa/{id}: the released text, its scores, and the label form (or the label given)."""

    async def get(self, request: Request) -> Response:
        sample_id = sample_id_of(request)

        def work(session: Session, reviewer: Reviewer) -> SampleView:
            return _sample_view(session, qa.get_sample(session=session, sample_id=sample_id))

        view = await self.db(request, work)
        return self.render(request, "qa_sample.html", {"sample": view})


class LabelSample(BaseView):
    """POST /qa/{id}/label: `label` harmful|fine, `categories` (repeated) for harmful."""

    async def post(self, request: Request) -> Response:
        sample_id = sample_id_of(request)
        form = await request.form()
        verdict = form.get("label", "")
        categories = form.getlist("categories")
        if not isinstance(verdict, str) or not all(isinstance(c, str) for c in categories):
            raise InvalidArgument("label", "must be text")
        names = [c for c in categories if isinstance(c, str)]

        def work(session: Session, reviewer: Reviewer) -> str:
            sample = qa.get_sample(session=session, sample_id=sample_id)
            label = qa.Label.parse(verdict, names, choices=qa.label_choices(sample.output))
            return qa.label_sample(session=session, sample_id=sample_id, reviewer=reviewer, label=label).state

        state = await self.db(request, work)
        return self.redirect(request, "/qa/next", flash=f"Labelled {state}.", kind="success")
