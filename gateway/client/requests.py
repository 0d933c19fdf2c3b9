"""The request messages of every call, built from plain Python values: shared by both clients, so that the
sync and asyncio variants differ only in how they wait."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TypedDict, get_type_hints

from google.protobuf.timestamp_pb2 import Timestamp

from gateway.api.v1 import audit_pb2 as au_pb
from gateway.api.v1 import generation_pb2 as gen_pb
from gateway.api.v1 import review_pb2 as rv_pb
from gateway.client.params import sampling_parameters

DECISIONS = {"approve": rv_pb.REVIEW_DECISION_APPROVE, "edit": rv_pb.REVIEW_DECISION_EDIT}
DECISIONS["reject"] = rv_pb.REVIEW_DECISION_REJECT


def generate(prompts: str | Sequence[str], params: dict[str, object]) -> gen_pb.GenerateRequest:
    if isinstance(prompts, str):
        prompts = [prompts]
    return gen_pb.GenerateRequest(input_string=list(prompts), parameters=sampling_parameters(**params))


def generate_stream(prompt: str, params: dict[str, object]) -> gen_pb.GenerateStreamRequest:
    return gen_pb.GenerateStreamRequest(input_string=prompt, parameters=sampling_parameters(**params))


def review_states(states: Iterable[str | int]) -> list[int]:
    """ReviewState values from names ("pending", "REVIEW_STATE_PENDING") or numbers."""
    out = []
    for state in states:
        if isinstance(state, int):
            out.append(state)
        else:
            name = state.upper()
            out.append(
                rv_pb.ReviewState.Value(name if name.startswith("REVIEW_STATE_") else f"REVIEW_STATE_{name}")
            )
    return out


def decide(
    item_id: str, expected_version: int, decision: str | int, *, reason: str, edited_text: str | None
) -> rv_pb.DecideRequest:
    if isinstance(decision, str):
        if decision.lower() not in DECISIONS:
            raise ValueError(f"decision must be one of {', '.join(DECISIONS)}, got {decision!r}")
        decision = DECISIONS[decision.lower()]
    return rv_pb.DecideRequest(
        item_id=item_id,
        expected_version=expected_version,
        decision=decision,  # type: ignore[arg-type]
        reason=reason,
        edited_text=edited_text or "",
    )


class AuditFilters(TypedDict, total=False):
    """Audit.Query's filters; every given one must match. `since` inclusive, `until` exclusive (aware
    datetimes); `event_type` "review.*" matches a family."""

    since: datetime | None
    until: datetime | None
    tenant: str | None
    request_id: str | None
    ticket: str | None
    actor: str | None
    event_type: str | None
    action: str | None


def _timestamp(value: datetime) -> Timestamp:
    if value.tzinfo is None:
        raise ValueError("since/until must be timezone-aware datetimes")
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def audit_query(*, after_id: int, limit: int, filters: AuditFilters) -> au_pb.AuditQuery:
    unknown = set(filters) - set(get_type_hints(AuditFilters))
    if unknown:
        raise TypeError(f"unknown audit filter(s): {', '.join(sorted(unknown))}")
    query = au_pb.AuditQuery(after_id=after_id, limit=limit)
    for name, value in filters.items():
        if value is None or value == "":
            continue
        if isinstance(value, datetime):
            getattr(query, name).CopyFrom(_timestamp(value))
        else:
            setattr(query, name, value)
    return query
