"""The WordListService servicer: word lists in the database over gRPC (scope `policy`, operators' keys).

Translation only: the store (gateway/wordlists/store.py) checks and audits; a change is attributed to
`key:<key id>`. Bad names or entries are INVALID_ARGUMENT naming the field; an unknown list or entry
NOT_FOUND; an existing name ALREADY_EXISTS; a change that changes nothing FAILED_PRECONDITION.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, TypeVar

import grpc
from sqlalchemy.orm import Session, sessionmaker

from gateway import fields
from gateway.api.v1 import wordlist_pb2 as wl_pb
from gateway.api.v1 import wordlist_pb2_grpc as wl_grpc
from gateway.errors import InvalidArgument
from gateway.pipeline.callers import current_caller
from gateway.policies.store import in_config_change
from gateway.rpc.services.convert import timestamp
from gateway.storage.tx import in_read_only
from gateway.wordlists import store
from gateway.wordlists.store import ListInfo

T = TypeVar("T")

_KINDS = {wl_pb.WORD_LIST_TARGET_POLICY: "policy", wl_pb.WORD_LIST_TARGET_TENANT: "tenant"}
_KIND_PB = {name: value for value, name in _KINDS.items()}


class _Named(Protocol):
    """Every request that names one list."""

    name: str
    tenant: str


MAX_ITEMS = store.MAX_ENTRIES  # per repeated field: bounds the work of one request before the store


def list_to_pb(info: ListInfo, *, entries: bool = True) -> wl_pb.WordList:
    snap = info.snapshot
    return wl_pb.WordList(
        id=snap.list_id,
        name=snap.name,
        tenant=snap.tenant,
        version=snap.version,
        latest_version=info.latest_version,
        revision=info.revision,
        words=list(snap.words) if entries else [],
        allow=list(snap.allow) if entries else [],
        word_count=len(snap.words),
        allow_count=len(snap.allow),
        created_by=info.created_by,
        created_at=timestamp(info.created_at),
        attached=[
            wl_pb.WordListAttachment(kind=_KIND_PB[a.target_kind], target=a.target, revision=a.revision)
            for a in info.attachments
        ],
    )


def _names(request: _Named) -> tuple[str, str]:
    """The list's name and owning tenant, checked before they reach a query (NUL, control characters)."""
    return (
        fields.text("name", request.name, max_chars=store.MAX_NAME_CHARS),
        fields.text("tenant", request.tenant, max_chars=store.MAX_NAME_CHARS),
    )


def _items(values: Iterable[str], field: str) -> list[str]:
    items = list(values)
    if len(items) > MAX_ITEMS:
        raise InvalidArgument(field, f"at most {MAX_ITEMS} entries")
    return items


class WordListServicer(wl_grpc.WordListServiceServicer):
    def __init__(self, *, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    async def CreateWordList(
        self, request: wl_pb.CreateWordListRequest, context: grpc.aio.ServicerContext
    ) -> wl_pb.WordList:
        actor = current_caller().actor
        name, tenant = _names(request)
        words, allow = _items(request.words, "words"), _items(request.allow, "allow")
        return await in_config_change(
            self._sessions,
            lambda s: list_to_pb(
                store.create_list(session=s, name=name, tenant=tenant, words=words, allow=allow, actor=actor)
            ),
        )

    async def ChangeWordList(
        self, request: wl_pb.ChangeWordListRequest, context: grpc.aio.ServicerContext
    ) -> wl_pb.WordList:
        actor = current_caller().actor
        name, tenant = _names(request)
        changes = {
            field: _items(getattr(request, field), field)
            for field in ("add_words", "remove_words", "add_allow", "remove_allow")
        }
        return await in_config_change(
            self._sessions,
            lambda s: list_to_pb(
                store.change_entries(session=s, name=name, tenant=tenant, actor=actor, **changes)
            ),
        )

    async def GetWordList(
        self, request: wl_pb.GetWordListRequest, context: grpc.aio.ServicerContext
    ) -> wl_pb.WordList:
        if request.version < 0:
            raise InvalidArgument("version", "must be 0 (the latest) or a stored version")
        name, tenant = _names(request)
        version = request.version or None
        return await in_read_only(
            self._sessions,
            lambda s: list_to_pb(store.get_list(session=s, name=name, tenant=tenant, version=version)),
        )

    async def ListWordLists(
        self, request: wl_pb.ListWordListsRequest, context: grpc.aio.ServicerContext
    ) -> wl_pb.ListWordListsResponse:
        if request.only_global and request.tenant:
            raise InvalidArgument("only_global", "give either tenant or only_global")
        tenant = fields.text("tenant", request.tenant, max_chars=store.MAX_NAME_CHARS)
        owner = "" if request.only_global else (tenant or None)

        def work(session: Session) -> wl_pb.ListWordListsResponse:
            infos = store.list_lists(session=session, tenant=owner)
            return wl_pb.ListWordListsResponse(lists=[list_to_pb(i, entries=False) for i in infos])

        return await in_read_only(self._sessions, work)

    async def ListWordListVersions(
        self, request: wl_pb.ListWordListVersionsRequest, context: grpc.aio.ServicerContext
    ) -> wl_pb.ListWordListVersionsResponse:
        name, tenant = _names(request)

        def work(session: Session) -> wl_pb.ListWordListVersionsResponse:
            infos = store.history(session=session, name=name, tenant=tenant)
            return wl_pb.ListWordListVersionsResponse(versions=[list_to_pb(i, entries=False) for i in infos])

        return await in_read_only(self._sessions, work)

    async def AttachWordList(
        self, request: wl_pb.AttachWordListRequest, context: grpc.aio.ServicerContext
    ) -> wl_pb.AttachWordListResponse:
        return await self._attach(request, attached=True)

    async def DetachWordList(
        self, request: wl_pb.AttachWordListRequest, context: grpc.aio.ServicerContext
    ) -> wl_pb.AttachWordListResponse:
        return await self._attach(request, attached=False)

    async def _attach(
        self, request: wl_pb.AttachWordListRequest, *, attached: bool
    ) -> wl_pb.AttachWordListResponse:
        actor = current_caller().actor
        name, tenant = _names(request)
        target = fields.text("target", request.target, max_chars=store.MAX_NAME_CHARS)
        kind = _KINDS.get(request.kind)
        if kind is None:
            raise InvalidArgument("kind", "must be WORD_LIST_TARGET_POLICY or WORD_LIST_TARGET_TENANT")
        change = store.attach if attached else store.detach

        def work(session: Session) -> wl_pb.AttachWordListResponse:
            revision = change(
                session=session,
                name=name,
                tenant=tenant,
                target_kind=kind,
                target=target,
                actor=actor,
            )
            return wl_pb.AttachWordListResponse(revision=revision)

        return await in_config_change(self._sessions, work)
