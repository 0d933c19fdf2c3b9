import datetime

from gateway.api.v1 import moderation_pb2 as _moderation_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ReviewState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REVIEW_STATE_UNSPECIFIED: _ClassVar[ReviewState]
    REVIEW_STATE_PENDING: _ClassVar[ReviewState]
    REVIEW_STATE_CLAIMED: _ClassVar[ReviewState]
    REVIEW_STATE_APPROVED: _ClassVar[ReviewState]
    REVIEW_STATE_EDITED: _ClassVar[ReviewState]
    REVIEW_STATE_REJECTED: _ClassVar[ReviewState]

class ReviewDecision(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REVIEW_DECISION_UNSPECIFIED: _ClassVar[ReviewDecision]
    REVIEW_DECISION_APPROVE: _ClassVar[ReviewDecision]
    REVIEW_DECISION_EDIT: _ClassVar[ReviewDecision]
    REVIEW_DECISION_REJECT: _ClassVar[ReviewDecision]
REVIEW_STATE_UNSPECIFIED: ReviewState
REVIEW_STATE_PENDING: ReviewState
REVIEW_STATE_CLAIMED: ReviewState
REVIEW_STATE_APPROVED: ReviewState
REVIEW_STATE_EDITED: ReviewState
REVIEW_STATE_REJECTED: ReviewState
REVIEW_DECISION_UNSPECIFIED: ReviewDecision
REVIEW_DECISION_APPROVE: ReviewDecision
REVIEW_DECISION_EDIT: ReviewDecision
REVIEW_DECISION_REJECT: ReviewDecision

class ReviewReason(_message.Message):
    __slots__ = ("category", "score", "threshold", "action", "scorer", "excerpt")
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    SCORER_FIELD_NUMBER: _ClassVar[int]
    EXCERPT_FIELD_NUMBER: _ClassVar[int]
    category: str
    score: float
    threshold: float
    action: _moderation_pb2.ModerationAction
    scorer: str
    excerpt: str
    def __init__(self, category: _Optional[str] = ..., score: _Optional[float] = ..., threshold: _Optional[float] = ..., action: _Optional[_Union[_moderation_pb2.ModerationAction, str]] = ..., scorer: _Optional[str] = ..., excerpt: _Optional[str] = ...) -> None: ...

class ReviewItem(_message.Message):
    __slots__ = ("id", "ticket", "state", "version", "escalated", "priority", "tenant", "request_id", "prompt", "generated_text", "reasons", "scores", "policy", "policy_version", "claimed_by", "lease_expires_at", "created_at", "decided_by", "decided_at", "decision_reason", "edited_text", "appeal", "appeal_reason", "verdicts_required", "verdicts_given", "verdicts", "prompt_item")
    class ScoresEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    TICKET_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ESCALATED_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    GENERATED_TEXT_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    CLAIMED_BY_FIELD_NUMBER: _ClassVar[int]
    LEASE_EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    DECIDED_BY_FIELD_NUMBER: _ClassVar[int]
    DECIDED_AT_FIELD_NUMBER: _ClassVar[int]
    DECISION_REASON_FIELD_NUMBER: _ClassVar[int]
    EDITED_TEXT_FIELD_NUMBER: _ClassVar[int]
    APPEAL_FIELD_NUMBER: _ClassVar[int]
    APPEAL_REASON_FIELD_NUMBER: _ClassVar[int]
    VERDICTS_REQUIRED_FIELD_NUMBER: _ClassVar[int]
    VERDICTS_GIVEN_FIELD_NUMBER: _ClassVar[int]
    VERDICTS_FIELD_NUMBER: _ClassVar[int]
    PROMPT_ITEM_FIELD_NUMBER: _ClassVar[int]
    id: str
    ticket: str
    state: ReviewState
    version: int
    escalated: bool
    priority: float
    tenant: str
    request_id: str
    prompt: str
    generated_text: str
    reasons: _containers.RepeatedCompositeFieldContainer[ReviewReason]
    scores: _containers.ScalarMap[str, float]
    policy: str
    policy_version: str
    claimed_by: str
    lease_expires_at: _timestamp_pb2.Timestamp
    created_at: _timestamp_pb2.Timestamp
    decided_by: str
    decided_at: _timestamp_pb2.Timestamp
    decision_reason: str
    edited_text: str
    appeal: bool
    appeal_reason: str
    verdicts_required: int
    verdicts_given: int
    verdicts: _containers.RepeatedCompositeFieldContainer[ReviewVerdict]
    prompt_item: bool
    def __init__(self, id: _Optional[str] = ..., ticket: _Optional[str] = ..., state: _Optional[_Union[ReviewState, str]] = ..., version: _Optional[int] = ..., escalated: _Optional[bool] = ..., priority: _Optional[float] = ..., tenant: _Optional[str] = ..., request_id: _Optional[str] = ..., prompt: _Optional[str] = ..., generated_text: _Optional[str] = ..., reasons: _Optional[_Iterable[_Union[ReviewReason, _Mapping]]] = ..., scores: _Optional[_Mapping[str, float]] = ..., policy: _Optional[str] = ..., policy_version: _Optional[str] = ..., claimed_by: _Optional[str] = ..., lease_expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., decided_by: _Optional[str] = ..., decided_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., decision_reason: _Optional[str] = ..., edited_text: _Optional[str] = ..., appeal: _Optional[bool] = ..., appeal_reason: _Optional[str] = ..., verdicts_required: _Optional[int] = ..., verdicts_given: _Optional[int] = ..., verdicts: _Optional[_Iterable[_Union[ReviewVerdict, _Mapping]]] = ..., prompt_item: _Optional[bool] = ...) -> None: ...

class ReviewVerdict(_message.Message):
    __slots__ = ("reviewer", "decision", "edited_text", "reason", "created_at")
    REVIEWER_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    EDITED_TEXT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    reviewer: str
    decision: ReviewDecision
    edited_text: str
    reason: str
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, reviewer: _Optional[str] = ..., decision: _Optional[_Union[ReviewDecision, str]] = ..., edited_text: _Optional[str] = ..., reason: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListItemsRequest(_message.Message):
    __slots__ = ("states", "limit")
    STATES_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    states: _containers.RepeatedScalarFieldContainer[ReviewState]
    limit: int
    def __init__(self, states: _Optional[_Iterable[_Union[ReviewState, str]]] = ..., limit: _Optional[int] = ...) -> None: ...

class ListItemsResponse(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[ReviewItem]
    def __init__(self, items: _Optional[_Iterable[_Union[ReviewItem, _Mapping]]] = ...) -> None: ...

class ClaimNextRequest(_message.Message):
    __slots__ = ("lease_seconds",)
    LEASE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    lease_seconds: int
    def __init__(self, lease_seconds: _Optional[int] = ...) -> None: ...

class ClaimNextResponse(_message.Message):
    __slots__ = ("item",)
    ITEM_FIELD_NUMBER: _ClassVar[int]
    item: ReviewItem
    def __init__(self, item: _Optional[_Union[ReviewItem, _Mapping]] = ...) -> None: ...

class RenewLeaseRequest(_message.Message):
    __slots__ = ("item_id", "lease_seconds")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    lease_seconds: int
    def __init__(self, item_id: _Optional[str] = ..., lease_seconds: _Optional[int] = ...) -> None: ...

class DecideRequest(_message.Message):
    __slots__ = ("item_id", "expected_version", "decision", "edited_text", "reason")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    EDITED_TEXT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    expected_version: int
    decision: ReviewDecision
    edited_text: str
    reason: str
    def __init__(self, item_id: _Optional[str] = ..., expected_version: _Optional[int] = ..., decision: _Optional[_Union[ReviewDecision, str]] = ..., edited_text: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...
