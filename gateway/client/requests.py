"""The request messages of every call, built from plain Python values: shared by both clients, so that the
sync and asyncio variants differ only in how they wait."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import TypedDict, get_type_hints

from google.protobuf.timestamp_pb2 import Timestamp

from gateway.api.v1 import audit_pb2 as au_pb
from gateway.api.v1 import generation_pb2 as gen_pb
from gateway.api.v1 import qa_pb2 as qa_pb
from gateway.api.v1 import review_pb2 as rv_pb
from gateway.api.v1 import webhooks_pb2 as wh_pb
from gateway.api.v1 import wordlist_pb2 as wl_pb
from gateway.client.params import sampling_parameters, string_list

DECISIONS = {"approve": rv_pb.REVIEW_DECISION_APPROVE, "edit": rv_pb.REVIEW_DECISION_EDIT}
DECISIONS["reject"] = rv_pb.REVIEW_DECISION_REJECT
WORD_LIST_TARGETS = {"policy": wl_pb.WORD_LIST_TARGET_POLICY, "tenant": wl_pb.WORD_LIST_TARGET_TENANT}
QA_LABELS = {"harmful": qa_pb.QA_STATE_HARMFUL, "fine": qa_pb.QA_STATE_FINE}


def choice(value: str | int, choices: Mapping[str, int], what: str) -> int:
    """An enum value by its short name (any case) or its number; a number is passed on as it is, for
    the server to refuse (INVALID_ARGUMENT) if it is not one it takes."""
    if isinstance(value, int):
        return value
    if value.lower() not in choices:
        raise ValueError(f"{what} must be one of {', '.join(choices)}, got {value!r}")
    return choices[value.lower()]


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
    return rv_pb.DecideRequest(
        item_id=item_id,
        expected_version=expected_version,
        decision=choice(decision, DECISIONS, "decision"),  # type: ignore[arg-type]
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


def create_word_list(
    name: str, *, tenant: str, words: Iterable[str], allow: Iterable[str]
) -> wl_pb.CreateWordListRequest:
    return wl_pb.CreateWordListRequest(
        name=name, tenant=tenant, words=string_list(words, "words"), allow=string_list(allow, "allow")
    )


def change_word_list(
    name: str,
    *,
    tenant: str,
    add_words: Iterable[str],
    remove_words: Iterable[str],
    add_allow: Iterable[str],
    remove_allow: Iterable[str],
) -> wl_pb.ChangeWordListRequest:
    return wl_pb.ChangeWordListRequest(
        name=name,
        tenant=tenant,
        add_words=string_list(add_words, "add_words"),
        remove_words=string_list(remove_words, "remove_words"),
        add_allow=string_list(add_allow, "add_allow"),
        remove_allow=string_list(remove_allow, "remove_allow"),
    )


def attach_word_list(name: str, kind: str | int, target: str, *, tenant: str) -> wl_pb.AttachWordListRequest:
    """AttachWordList's and DetachWordList's request: `kind` "policy" or "tenant" (or the enum)."""
    return wl_pb.AttachWordListRequest(
        name=name,
        tenant=tenant,
        kind=choice(kind, WORD_LIST_TARGETS, "kind"),  # type: ignore[arg-type]
        target=target,
    )


def add_webhook(url: str, events: Iterable[str]) -> wh_pb.AddWebhookRequest:
    return wh_pb.AddWebhookRequest(url=url, events=string_list(events, "events"))


def label_qa_sample(
    sample_id: str, label: str | int, categories: Iterable[str]
) -> qa_pb.LabelQaSampleRequest:
    """`label` "harmful" (with categories) or "fine" (without), or the QaState."""
    return qa_pb.LabelQaSampleRequest(
        sample_id=sample_id,
        label=choice(label, QA_LABELS, "label"),  # type: ignore[arg-type]
        categories=string_list(categories, "categories"),
    )
