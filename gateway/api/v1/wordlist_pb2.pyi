import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class WordListTarget(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WORD_LIST_TARGET_UNSPECIFIED: _ClassVar[WordListTarget]
    WORD_LIST_TARGET_POLICY: _ClassVar[WordListTarget]
    WORD_LIST_TARGET_TENANT: _ClassVar[WordListTarget]
WORD_LIST_TARGET_UNSPECIFIED: WordListTarget
WORD_LIST_TARGET_POLICY: WordListTarget
WORD_LIST_TARGET_TENANT: WordListTarget

class WordListAttachment(_message.Message):
    __slots__ = ("kind", "target", "revision")
    KIND_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    kind: WordListTarget
    target: str
    revision: int
    def __init__(self, kind: _Optional[_Union[WordListTarget, str]] = ..., target: _Optional[str] = ..., revision: _Optional[int] = ...) -> None: ...

class WordList(_message.Message):
    __slots__ = ("id", "name", "tenant", "version", "latest_version", "revision", "words", "allow", "word_count", "allow_count", "created_by", "created_at", "attached")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    LATEST_VERSION_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    WORDS_FIELD_NUMBER: _ClassVar[int]
    ALLOW_FIELD_NUMBER: _ClassVar[int]
    WORD_COUNT_FIELD_NUMBER: _ClassVar[int]
    ALLOW_COUNT_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    ATTACHED_FIELD_NUMBER: _ClassVar[int]
    id: int
    name: str
    tenant: str
    version: int
    latest_version: int
    revision: int
    words: _containers.RepeatedScalarFieldContainer[str]
    allow: _containers.RepeatedScalarFieldContainer[str]
    word_count: int
    allow_count: int
    created_by: str
    created_at: _timestamp_pb2.Timestamp
    attached: _containers.RepeatedCompositeFieldContainer[WordListAttachment]
    def __init__(self, id: _Optional[int] = ..., name: _Optional[str] = ..., tenant: _Optional[str] = ..., version: _Optional[int] = ..., latest_version: _Optional[int] = ..., revision: _Optional[int] = ..., words: _Optional[_Iterable[str]] = ..., allow: _Optional[_Iterable[str]] = ..., word_count: _Optional[int] = ..., allow_count: _Optional[int] = ..., created_by: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., attached: _Optional[_Iterable[_Union[WordListAttachment, _Mapping]]] = ...) -> None: ...

class CreateWordListRequest(_message.Message):
    __slots__ = ("name", "tenant", "words", "allow")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    WORDS_FIELD_NUMBER: _ClassVar[int]
    ALLOW_FIELD_NUMBER: _ClassVar[int]
    name: str
    tenant: str
    words: _containers.RepeatedScalarFieldContainer[str]
    allow: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., tenant: _Optional[str] = ..., words: _Optional[_Iterable[str]] = ..., allow: _Optional[_Iterable[str]] = ...) -> None: ...

class ChangeWordListRequest(_message.Message):
    __slots__ = ("name", "tenant", "add_words", "remove_words", "add_allow", "remove_allow")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    ADD_WORDS_FIELD_NUMBER: _ClassVar[int]
    REMOVE_WORDS_FIELD_NUMBER: _ClassVar[int]
    ADD_ALLOW_FIELD_NUMBER: _ClassVar[int]
    REMOVE_ALLOW_FIELD_NUMBER: _ClassVar[int]
    name: str
    tenant: str
    add_words: _containers.RepeatedScalarFieldContainer[str]
    remove_words: _containers.RepeatedScalarFieldContainer[str]
    add_allow: _containers.RepeatedScalarFieldContainer[str]
    remove_allow: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., tenant: _Optional[str] = ..., add_words: _Optional[_Iterable[str]] = ..., remove_words: _Optional[_Iterable[str]] = ..., add_allow: _Optional[_Iterable[str]] = ..., remove_allow: _Optional[_Iterable[str]] = ...) -> None: ...

class GetWordListRequest(_message.Message):
    __slots__ = ("name", "tenant", "version")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    tenant: str
    version: int
    def __init__(self, name: _Optional[str] = ..., tenant: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class ListWordListsRequest(_message.Message):
    __slots__ = ("tenant", "only_global")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    ONLY_GLOBAL_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    only_global: bool
    def __init__(self, tenant: _Optional[str] = ..., only_global: _Optional[bool] = ...) -> None: ...

class ListWordListsResponse(_message.Message):
    __slots__ = ("lists",)
    LISTS_FIELD_NUMBER: _ClassVar[int]
    lists: _containers.RepeatedCompositeFieldContainer[WordList]
    def __init__(self, lists: _Optional[_Iterable[_Union[WordList, _Mapping]]] = ...) -> None: ...

class ListWordListVersionsRequest(_message.Message):
    __slots__ = ("name", "tenant")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    name: str
    tenant: str
    def __init__(self, name: _Optional[str] = ..., tenant: _Optional[str] = ...) -> None: ...

class ListWordListVersionsResponse(_message.Message):
    __slots__ = ("versions",)
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    versions: _containers.RepeatedCompositeFieldContainer[WordList]
    def __init__(self, versions: _Optional[_Iterable[_Union[WordList, _Mapping]]] = ...) -> None: ...

class AttachWordListRequest(_message.Message):
    __slots__ = ("name", "tenant", "kind", "target")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    name: str
    tenant: str
    kind: WordListTarget
    target: str
    def __init__(self, name: _Optional[str] = ..., tenant: _Optional[str] = ..., kind: _Optional[_Union[WordListTarget, str]] = ..., target: _Optional[str] = ...) -> None: ...

class AttachWordListResponse(_message.Message):
    __slots__ = ("revision",)
    REVISION_FIELD_NUMBER: _ClassVar[int]
    revision: int
    def __init__(self, revision: _Optional[int] = ...) -> None: ...
