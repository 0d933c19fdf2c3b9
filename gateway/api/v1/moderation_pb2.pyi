from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ModerationAction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MODERATION_ACTION_UNSPECIFIED: _ClassVar[ModerationAction]
    MODERATION_ACTION_RELEASED: _ClassVar[ModerationAction]
    MODERATION_ACTION_MASKED: _ClassVar[ModerationAction]
    MODERATION_ACTION_HELD: _ClassVar[ModerationAction]
    MODERATION_ACTION_BLOCKED: _ClassVar[ModerationAction]
MODERATION_ACTION_UNSPECIFIED: ModerationAction
MODERATION_ACTION_RELEASED: ModerationAction
MODERATION_ACTION_MASKED: ModerationAction
MODERATION_ACTION_HELD: ModerationAction
MODERATION_ACTION_BLOCKED: ModerationAction

class Reason(_message.Message):
    __slots__ = ("category", "score", "threshold", "action", "scorer")
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    SCORER_FIELD_NUMBER: _ClassVar[int]
    category: str
    score: float
    threshold: float
    action: ModerationAction
    scorer: str
    def __init__(self, category: _Optional[str] = ..., score: _Optional[float] = ..., threshold: _Optional[float] = ..., action: _Optional[_Union[ModerationAction, str]] = ..., scorer: _Optional[str] = ...) -> None: ...

class ScorerVersion(_message.Message):
    __slots__ = ("name", "version")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...

class ModerationResult(_message.Message):
    __slots__ = ("action", "reasons", "scores", "policy", "policy_version", "scorers")
    class ScoresEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    ACTION_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    SCORERS_FIELD_NUMBER: _ClassVar[int]
    action: ModerationAction
    reasons: _containers.RepeatedCompositeFieldContainer[Reason]
    scores: _containers.ScalarMap[str, float]
    policy: str
    policy_version: str
    scorers: _containers.RepeatedCompositeFieldContainer[ScorerVersion]
    def __init__(self, action: _Optional[_Union[ModerationAction, str]] = ..., reasons: _Optional[_Iterable[_Union[Reason, _Mapping]]] = ..., scores: _Optional[_Mapping[str, float]] = ..., policy: _Optional[str] = ..., policy_version: _Optional[str] = ..., scorers: _Optional[_Iterable[_Union[ScorerVersion, _Mapping]]] = ...) -> None: ...
