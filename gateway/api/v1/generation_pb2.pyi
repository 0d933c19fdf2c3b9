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

class FinishReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FINISH_REASON_UNSPECIFIED: _ClassVar[FinishReason]
    FINISH_REASON_LENGTH: _ClassVar[FinishReason]
    FINISH_REASON_END_OF_TEXT: _ClassVar[FinishReason]
    FINISH_REASON_STOP_SEQUENCE: _ClassVar[FinishReason]

class ResultState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RESULT_STATE_UNSPECIFIED: _ClassVar[ResultState]
    RESULT_STATE_PENDING: _ClassVar[ResultState]
    RESULT_STATE_APPROVED: _ClassVar[ResultState]
    RESULT_STATE_EDITED: _ClassVar[ResultState]
    RESULT_STATE_REJECTED: _ClassVar[ResultState]
    RESULT_STATE_BLOCKED: _ClassVar[ResultState]
FINISH_REASON_UNSPECIFIED: FinishReason
FINISH_REASON_LENGTH: FinishReason
FINISH_REASON_END_OF_TEXT: FinishReason
FINISH_REASON_STOP_SEQUENCE: FinishReason
RESULT_STATE_UNSPECIFIED: ResultState
RESULT_STATE_PENDING: ResultState
RESULT_STATE_APPROVED: ResultState
RESULT_STATE_EDITED: ResultState
RESULT_STATE_REJECTED: ResultState
RESULT_STATE_BLOCKED: ResultState

class SamplingParameters(_message.Message):
    __slots__ = ("temperature", "top_p", "top_k", "max_new_tokens", "do_sample", "repetition_penalty", "seed", "stop", "num_return_sequences", "min_new_tokens")
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    TOP_P_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    MAX_NEW_TOKENS_FIELD_NUMBER: _ClassVar[int]
    DO_SAMPLE_FIELD_NUMBER: _ClassVar[int]
    REPETITION_PENALTY_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    STOP_FIELD_NUMBER: _ClassVar[int]
    NUM_RETURN_SEQUENCES_FIELD_NUMBER: _ClassVar[int]
    MIN_NEW_TOKENS_FIELD_NUMBER: _ClassVar[int]
    temperature: float
    top_p: float
    top_k: int
    max_new_tokens: int
    do_sample: bool
    repetition_penalty: float
    seed: int
    stop: _containers.RepeatedScalarFieldContainer[str]
    num_return_sequences: int
    min_new_tokens: int
    def __init__(self, temperature: _Optional[float] = ..., top_p: _Optional[float] = ..., top_k: _Optional[int] = ..., max_new_tokens: _Optional[int] = ..., do_sample: _Optional[bool] = ..., repetition_penalty: _Optional[float] = ..., seed: _Optional[int] = ..., stop: _Optional[_Iterable[str]] = ..., num_return_sequences: _Optional[int] = ..., min_new_tokens: _Optional[int] = ...) -> None: ...

class GenerateRequest(_message.Message):
    __slots__ = ("input_string", "parameters")
    INPUT_STRING_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    input_string: _containers.RepeatedScalarFieldContainer[str]
    parameters: SamplingParameters
    def __init__(self, input_string: _Optional[_Iterable[str]] = ..., parameters: _Optional[_Union[SamplingParameters, _Mapping]] = ...) -> None: ...

class GenerateResponse(_message.Message):
    __slots__ = ("request_id", "model", "seed", "outputs")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    model: str
    seed: int
    outputs: _containers.RepeatedCompositeFieldContainer[Output]
    def __init__(self, request_id: _Optional[str] = ..., model: _Optional[str] = ..., seed: _Optional[int] = ..., outputs: _Optional[_Iterable[_Union[Output, _Mapping]]] = ...) -> None: ...

class Output(_message.Message):
    __slots__ = ("prompt_index", "sequence_index", "moderation", "text", "ticket", "prompt_tokens", "generated_tokens", "finish_reason")
    PROMPT_INDEX_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_INDEX_FIELD_NUMBER: _ClassVar[int]
    MODERATION_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    TICKET_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    GENERATED_TOKENS_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    prompt_index: int
    sequence_index: int
    moderation: _moderation_pb2.ModerationResult
    text: str
    ticket: str
    prompt_tokens: int
    generated_tokens: int
    finish_reason: FinishReason
    def __init__(self, prompt_index: _Optional[int] = ..., sequence_index: _Optional[int] = ..., moderation: _Optional[_Union[_moderation_pb2.ModerationResult, _Mapping]] = ..., text: _Optional[str] = ..., ticket: _Optional[str] = ..., prompt_tokens: _Optional[int] = ..., generated_tokens: _Optional[int] = ..., finish_reason: _Optional[_Union[FinishReason, str]] = ...) -> None: ...

class GenerateStreamRequest(_message.Message):
    __slots__ = ("input_string", "parameters")
    INPUT_STRING_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    input_string: str
    parameters: SamplingParameters
    def __init__(self, input_string: _Optional[str] = ..., parameters: _Optional[_Union[SamplingParameters, _Mapping]] = ...) -> None: ...

class GenerateStreamResponse(_message.Message):
    __slots__ = ("start", "text", "final")
    START_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    FINAL_FIELD_NUMBER: _ClassVar[int]
    start: StreamStart
    text: str
    final: Output
    def __init__(self, start: _Optional[_Union[StreamStart, _Mapping]] = ..., text: _Optional[str] = ..., final: _Optional[_Union[Output, _Mapping]] = ...) -> None: ...

class StreamStart(_message.Message):
    __slots__ = ("request_id", "model", "seed")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    model: str
    seed: int
    def __init__(self, request_id: _Optional[str] = ..., model: _Optional[str] = ..., seed: _Optional[int] = ...) -> None: ...

class GetResultRequest(_message.Message):
    __slots__ = ("ticket",)
    TICKET_FIELD_NUMBER: _ClassVar[int]
    ticket: str
    def __init__(self, ticket: _Optional[str] = ...) -> None: ...

class Result(_message.Message):
    __slots__ = ("ticket", "state", "text", "request_id", "prompt_index", "sequence_index", "decided_at")
    TICKET_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PROMPT_INDEX_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_INDEX_FIELD_NUMBER: _ClassVar[int]
    DECIDED_AT_FIELD_NUMBER: _ClassVar[int]
    ticket: str
    state: ResultState
    text: str
    request_id: str
    prompt_index: int
    sequence_index: int
    decided_at: _timestamp_pb2.Timestamp
    def __init__(self, ticket: _Optional[str] = ..., state: _Optional[_Union[ResultState, str]] = ..., text: _Optional[str] = ..., request_id: _Optional[str] = ..., prompt_index: _Optional[int] = ..., sequence_index: _Optional[int] = ..., decided_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class AppealRequest(_message.Message):
    __slots__ = ("ticket", "reason")
    TICKET_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ticket: str
    reason: str
    def __init__(self, ticket: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...
