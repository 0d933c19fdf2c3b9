"""The QaService servicer: QA labels of released outputs for programmatic reviewers.

Same rules as the web QA page (gateway/review/qa.py does the work): the caller's API key must be bound
to a reviewer account, which is who the label is by; the text shown is what the client received.
"""

from __future__ import annotations

from typing import Any

import grpc
from sqlalchemy.orm import Session, sessionmaker

from gateway import fields
from gateway.api.v1 import qa_pb2 as qa_pb
from gateway.api.v1 import qa_pb2_grpc as qa_grpc
from gateway.errors import InvalidArgument
from gateway.review import qa
from gateway.rpc.services.convert import timestamp
from gateway.rpc.services.review import ReviewServicer
from gateway.storage.models import ModerationAction, QaSample, QaState, Reviewer
from gateway.storage.tx import in_transaction

DEFAULT_LIST_LIMIT = 100
MAX_LIST_LIMIT = 500

_STATE_TO_PB = {
    QaState.PENDING: qa_pb.QA_STATE_PENDING,
    QaState.HARMFUL: qa_pb.QA_STATE_HARMFUL,
    QaState.FINE: qa_pb.QA_STATE_FINE,
}
_LABEL_FROM_PB = {qa_pb.QA_STATE_HARMFUL: "harmful", qa_pb.QA_STATE_FINE: "fine"}


def sample_to_pb(sample: QaSample, *, labelled_by: str = "") -> qa_pb.QaSample:
    output = sample.output
    msg = qa_pb.QaSample(
        id=sample.id,
        output_id=output.id,
        state=_STATE_TO_PB[sample.state],
        policy=sample.policy_name,
        policy_version=output.policy_version,
        sample_rate=sample.sample_rate,
        tenant=output.request.tenant,
        request_id=output.request.request_id,
        prompt=output.prompt,
        released_text=output.released_text or "",
        masked=output.action is ModerationAction.MASK,
        scores={
            k: float(v)
            for k, v in (output.scores or {}).items()
            if isinstance(v, int | float) and not isinstance(v, bool)
        },
        label_choices=qa.label_choices(output),
        categories=list(sample.categories or []),
        labelled_by=labelled_by,
    )
    for field, value in (("labelled_at", sample.labelled_at), ("created_at", sample.created_at)):
        ts = timestamp(value)
        if ts is not None:
            getattr(msg, field).CopyFrom(ts)
    return msg


def _reviewer(session: Session) -> Reviewer:
    return ReviewServicer._reviewer(session)


class QaServicer(qa_grpc.QaServiceServicer):
    def __init__(self, *, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    async def ListQaSamples(
        self, request: qa_pb.ListQaSamplesRequest, context: grpc.aio.ServicerContext
    ) -> Any:
        limit = request.limit or DEFAULT_LIST_LIMIT
        if not 1 <= limit <= MAX_LIST_LIMIT:
            raise InvalidArgument("limit", f"must be between 1 and {MAX_LIST_LIMIT}, got {limit}")

        def work(session: Session) -> qa_pb.ListQaSamplesResponse:
            _reviewer(session)
            samples = qa.pending(session=session, limit=limit)
            return qa_pb.ListQaSamplesResponse(samples=[sample_to_pb(s) for s in samples])

        return await in_transaction(self._sessions, work)

    async def LabelQaSample(
        self, request: qa_pb.LabelQaSampleRequest, context: grpc.aio.ServicerContext
    ) -> Any:
        verdict = _LABEL_FROM_PB.get(request.label)
        if verdict is None:
            raise InvalidArgument("label", "must be QA_STATE_HARMFUL or QA_STATE_FINE")
        sample_id = fields.record_id("sample_id", request.sample_id)
        categories = fields.texts("categories", request.categories)

        def work(session: Session) -> qa_pb.QaSample:
            reviewer = _reviewer(session)
            sample = qa.get_sample(session=session, sample_id=sample_id)
            label = qa.Label.parse(verdict, categories, choices=qa.label_choices(sample.output))
            done = qa.label_sample(session=session, sample_id=sample.id, reviewer=reviewer, label=label)
            return sample_to_pb(done, labelled_by=reviewer.username)

        return await in_transaction(self._sessions, work)
