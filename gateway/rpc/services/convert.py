"""Conversion between protobuf messages and domain objects, at the edge of the service.

This is the one place that decides what of a moderation decision a client may see: text only for
released or masked outputs, reasons without excerpts. A held or blocked output carries only its ticket,
the action and which rules fired (category and action): its scores, token counts and finish reason are
facts about the withheld text, and with a seeded stop-sequence rerun they would tell a client its words
one probe at a time (docs/operations.md, "What a client learns about withheld text").
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, overload

from google.protobuf.timestamp_pb2 import Timestamp

from gateway.api.v1 import generation_pb2 as gen_pb
from gateway.api.v1 import moderation_pb2 as mod_pb
from gateway.generation.generator import FinishReason, GeneratedSequence
from gateway.generation.params import SCALAR_PARAMS, RawParams
from gateway.review.queue import ResultState, ResultView
from moderation.types import Action, Decision

_ACTION_TO_PB = {
    Action.RELEASE: mod_pb.MODERATION_ACTION_RELEASED,
    Action.MASK: mod_pb.MODERATION_ACTION_MASKED,
    Action.HOLD: mod_pb.MODERATION_ACTION_HELD,
    Action.BLOCK: mod_pb.MODERATION_ACTION_BLOCKED,
}
_RESULT_TO_PB = {
    ResultState.PENDING: gen_pb.RESULT_STATE_PENDING,
    ResultState.APPROVED: gen_pb.RESULT_STATE_APPROVED,
    ResultState.EDITED: gen_pb.RESULT_STATE_EDITED,
    ResultState.REJECTED: gen_pb.RESULT_STATE_REJECTED,
    ResultState.BLOCKED: gen_pb.RESULT_STATE_BLOCKED,
}
_FINISH_TO_PB = {
    FinishReason.LENGTH: gen_pb.FINISH_REASON_LENGTH,
    FinishReason.END_OF_TEXT: gen_pb.FINISH_REASON_END_OF_TEXT,
    FinishReason.STOP_SEQUENCE: gen_pb.FINISH_REASON_STOP_SEQUENCE,
}


@overload
def timestamp(value: datetime) -> Timestamp: ...
@overload
def timestamp(value: None) -> None: ...
@overload
def timestamp(value: datetime | None) -> Timestamp | None: ...
def timestamp(value: datetime | None) -> Timestamp | None:
    """A database time as a protobuf Timestamp (None stays None: the field is left unset)."""
    if value is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def raw_params_from_pb(p: gen_pb.SamplingParameters) -> RawParams:
    """Unset proto3 `optional` fields become None so that the server's defaults apply."""

    given: dict[str, Any] = {name: getattr(p, name) if p.HasField(name) else None for name in SCALAR_PARAMS}
    return RawParams(stop=tuple(p.stop), **given)


def withheld_moderation_to_pb(decision: Decision) -> mod_pb.ModerationResult:
    """What a client may know of a decision that withheld the text: the action, each fired rule's category
    and action, and which policy and scorers decided. No score: it is measured on the withheld text."""
    return mod_pb.ModerationResult(
        action=_ACTION_TO_PB[decision.action],
        reasons=[
            mod_pb.Reason(category=r.category, action=_ACTION_TO_PB[r.action]) for r in decision.reasons
        ],
        policy=decision.policy_name,
        policy_version=decision.policy_version,
        scorers=[mod_pb.ScorerVersion(name=s.name, version=s.version) for s in decision.scorers],
    )


def moderation_to_pb(decision: Decision) -> mod_pb.ModerationResult:
    return mod_pb.ModerationResult(
        action=_ACTION_TO_PB[decision.action],
        reasons=[
            mod_pb.Reason(
                category=r.category,
                score=r.score,
                threshold=r.threshold,
                action=_ACTION_TO_PB[r.action],
                scorer=r.scorer,
            )
            for r in decision.reasons
        ],
        scores=dict(decision.scores),
        policy=decision.policy_name,
        policy_version=decision.policy_version,
        scorers=[mod_pb.ScorerVersion(name=s.name, version=s.version) for s in decision.scorers],
    )


def output_to_pb(
    *,
    prompt_index: int,
    sequence: GeneratedSequence,
    decision: Decision,
    ticket: str | None,
    include_text: bool = True,
) -> gen_pb.Output:
    """`include_text=False` is for the end of a stream, whose released text was already sent."""
    if not decision.releasable:
        return gen_pb.Output(
            prompt_index=prompt_index,
            sequence_index=sequence.sequence_index,
            moderation=withheld_moderation_to_pb(decision),
            ticket=ticket or "",
        )
    text = decision.text if include_text else ""
    return gen_pb.Output(
        prompt_index=prompt_index,
        sequence_index=sequence.sequence_index,
        moderation=moderation_to_pb(decision),
        text=text,
        ticket=ticket or "",
        prompt_tokens=sequence.prompt_tokens,
        generated_tokens=sequence.generated_tokens,
        finish_reason=_FINISH_TO_PB[sequence.finish_reason],
    )


def result_to_pb(view: ResultView) -> gen_pb.Result:
    result = gen_pb.Result(
        ticket=view.ticket,
        state=_RESULT_TO_PB[view.state],
        text=view.text or "",
        request_id=view.request_id,
        prompt_index=view.prompt_index,
        sequence_index=view.sequence_index,
    )
    if view.decided_at is not None:
        result.decided_at.FromDatetime(view.decided_at)
    return result
