import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class QaState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    QA_STATE_UNSPECIFIED: _ClassVar[QaState]
    QA_STATE_PENDING: _ClassVar[QaState]
    QA_STATE_HARMFUL: _ClassVar[QaState]
    QA_STATE_FINE: _ClassVar[QaState]
QA_STATE_UNSPECIFIED: QaState
QA_STATE_PENDING: QaState
QA_STATE_HARMFUL: QaState
QA_STATE_FINE: QaState

class QaSample(_message.Message):
    __slots__ = ("id", "output_id", "state", "policy", "policy_version", "sample_rate", "tenant", "request_id", "prompt", "released_text", "masked", "scores", "label_choices", "categories", "labelled_by", "labelled_at", "created_at")
    class ScoresEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    RELEASED_TEXT_FIELD_NUMBER: _ClassVar[int]
    MASKED_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    LABEL_CHOICES_FIELD_NUMBER: _ClassVar[int]
    CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    LABELLED_BY_FIELD_NUMBER: _ClassVar[int]
    LABELLED_AT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    output_id: str
    state: QaState
    policy: str
    policy_version: str
    sample_rate: float
    tenant: str
    request_id: str
    prompt: str
    released_text: str
    masked: bool
    scores: _containers.ScalarMap[str, float]
    label_choices: _containers.RepeatedScalarFieldContainer[str]
    categories: _containers.RepeatedScalarFieldContainer[str]
    labelled_by: str
    labelled_at: _timestamp_pb2.Timestamp
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., output_id: _Optional[str] = ..., state: _Optional[_Union[QaState, str]] = ..., policy: _Optional[str] = ..., policy_version: _Optional[str] = ..., sample_rate: _Optional[float] = ..., tenant: _Optional[str] = ..., request_id: _Optional[str] = ..., prompt: _Optional[str] = ..., released_text: _Optional[str] = ..., masked: _Optional[bool] = ..., scores: _Optional[_Mapping[str, float]] = ..., label_choices: _Optional[_Iterable[str]] = ..., categories: _Optional[_Iterable[str]] = ..., labelled_by: _Optional[str] = ..., labelled_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListQaSamplesRequest(_message.Message):
    __slots__ = ("limit",)
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    limit: int
    def __init__(self, limit: _Optional[int] = ...) -> None: ...

class ListQaSamplesResponse(_message.Message):
    __slots__ = ("samples",)
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    samples: _containers.RepeatedCompositeFieldContainer[QaSample]
    def __init__(self, samples: _Optional[_Iterable[_Union[QaSample, _Mapping]]] = ...) -> None: ...

class LabelQaSampleRequest(_message.Message):
    __slots__ = ("sample_id", "label", "categories")
    SAMPLE_ID_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    sample_id: str
    label: QaState
    categories: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, sample_id: _Optional[str] = ..., label: _Optional[_Union[QaState, str]] = ..., categories: _Optional[_Iterable[str]] = ...) -> None: ...
