"""The WordListService servicer on a real database (SQLite and PostgreSQL), called directly: what it
answers, and a change that collides with a concurrent one is ABORTED (retry), never INTERNAL."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from gateway.api.v1 import wordlist_pb2 as wl_pb
from gateway.errors import InvalidArgument
from gateway.pipeline.callers import Caller, caller_var
from gateway.policies import store as policy_store
from gateway.policies.store import ConcurrentChange
from gateway.rpc.services.wordlist import WordListServicer


def _call(method: Any, request: Any) -> Any:
    async def run() -> Any:
        caller_var.set(Caller(tenant="ops", scopes=frozenset({"policy"}), key_id="k1"))
        return await method(request, None)

    return asyncio.run(run())


def test_create_change_attach_and_read_back(db: sessionmaker[Session]) -> None:
    servicer = WordListServicer(sessions=db)
    made = _call(servicer.CreateWordList, wl_pb.CreateWordListRequest(name="brand", words=["Zorblax", "#x"]))
    assert (made.version, list(made.words), made.created_by) == (1, ["zorblax"], "key:k1")
    changed = _call(
        servicer.ChangeWordList, wl_pb.ChangeWordListRequest(name="brand", add_allow=["zorblax fan"])
    )
    assert (changed.version, changed.word_count, changed.allow_count) == (2, 1, 1)
    attached = _call(
        servicer.AttachWordList,
        wl_pb.AttachWordListRequest(name="brand", kind=wl_pb.WORD_LIST_TARGET_POLICY, target="default"),
    )
    got = _call(servicer.GetWordList, wl_pb.GetWordListRequest(name="brand"))
    assert [(a.kind, a.target, a.revision) for a in got.attached] == [
        (wl_pb.WORD_LIST_TARGET_POLICY, "default", attached.revision)
    ]
    only_global = _call(servicer.ListWordLists, wl_pb.ListWordListsRequest(only_global=True))
    assert [x.name for x in only_global.lists] == ["brand"]
    with pytest.raises(InvalidArgument, match="kind"):
        _call(servicer.AttachWordList, wl_pb.AttachWordListRequest(name="brand", target="default"))
    with pytest.raises(InvalidArgument, match="only_global"):
        _call(servicer.ListWordLists, wl_pb.ListWordListsRequest(tenant="a", only_global=True))


def test_a_change_racing_another_is_aborted_and_changes_nothing(
    db: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    servicer = WordListServicer(sessions=db)
    _call(servicer.CreateWordList, wl_pb.CreateWordListRequest(name="brand", words=["zorblax"]))
    # This replica read the revision before another change committed: it takes the same number.
    monkeypatch.setattr(policy_store, "latest_revision", lambda *, session: 0)
    with pytest.raises(ConcurrentChange) as raced:
        _call(servicer.ChangeWordList, wl_pb.ChangeWordListRequest(name="brand", add_words=["flimflam"]))
    assert raced.value.grpc_status == "ABORTED"
    monkeypatch.undo()
    got = _call(servicer.GetWordList, wl_pb.GetWordListRequest(name="brand"))
    assert (got.latest_version, list(got.words)) == (1, ["zorblax"])
