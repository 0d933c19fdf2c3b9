"""Word lists at runtime, end to end: two real `modgate serve` replicas on one PostgreSQL database; an
operator creates a tenant's list and attaches it through replica A's WordListService, and replica B
applies it without a restart, to that tenant only; a decision made under the older list version
replays exactly.

The word is taken from what the demo model generates for a fixed seed, so the list really changes the
decision: before the list the text is released as generated; with it, B masks the word for tenant acme
and still releases it unchanged for tenant beta; once the word is allow-listed (list v2), acme's text is
released again. Key `acme-review` decides under `custom` (review_all: every output HELD with a ticket),
so the decisions made under list v1 have a ticket to replay.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.api.v1 import wordlist_pb2 as wl_pb
from gateway.api.v1 import wordlist_pb2_grpc as wl_grpc
from gateway.cli import cli
from gateway.client import GatewayClient, action_name
from gateway.storage.engine import make_engine
from gateway.storage.models import AuditEvent, GenerationOutput
from tests.integration.keys import make_keys
from tests.support.replicas import two_replicas

pytestmark = pytest.mark.postgres

CONFIG = """
[moderation.policies.custom]
description = "everything to a reviewer"
review_all = true
"""
PROMPT = "The meaning of life is"
SEED = 7


@pytest.fixture(scope="module")
def cluster(demo_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    yield from two_replicas(demo_model_dir, tmp_path_factory.mktemp("wordlist-replicas"), CONFIG)


def _generate(address: str, key: str) -> tuple[str, str, str]:
    """(action, text the client got, ticket) for the fixed prompt and seed."""
    with GatewayClient(address, api_key=key) as client:
        out = client.generate(PROMPT, max_new_tokens=16, seed=SEED).outputs[0]
    return action_name(out.moderation.action), out.text, out.ticket


def _until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"replica B never {what}")


def test_a_list_change_on_one_replica_is_applied_by_the_other_to_its_tenant_only(
    cluster: dict[str, str],
) -> None:
    keys = make_keys(
        cluster["url"],
        {
            "acme": {"tenant": "acme", "scopes": ["generate"]},
            "acme-review": {"tenant": "acme", "scopes": ["generate"], "policy": "custom"},
            "beta": {"tenant": "beta", "scopes": ["generate"]},
            "ops": {"tenant": "ops", "scopes": ["policy"]},
        },
    )
    action, text, _ = _generate(cluster["b"], keys["acme"])
    assert action == "RELEASED", (action, text)
    word = max(re.findall(r"(?<![^\W\d_])[^\W\d_]{4,}(?![^\W\d_])", text), key=len, default=None)
    assert word, f"the demo model's text has no word to list: {text!r}"

    with grpc.insecure_channel(cluster["a"]) as channel:
        stub = wl_grpc.WordListServiceStub(channel)
        with pytest.raises(grpc.RpcError) as denied:
            stub.ListWordLists(
                wl_pb.ListWordListsRequest(), metadata=[("authorization", f"Bearer {keys['acme']}")]
            )
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
        auth = [("authorization", f"Bearer {keys['ops']}")]
        made = stub.CreateWordList(
            wl_pb.CreateWordListRequest(name="brand", tenant="acme", words=[word.upper()]), metadata=auth
        )
        assert (made.version, list(made.words)) == (1, [word.lower()])
        refusals = [
            (
                stub.CreateWordList,
                wl_pb.CreateWordListRequest(name="brand", tenant="acme"),
                grpc.StatusCode.ALREADY_EXISTS,
            ),
            (stub.CreateWordList, wl_pb.CreateWordListRequest(name=""), grpc.StatusCode.INVALID_ARGUMENT),
            (stub.GetWordList, wl_pb.GetWordListRequest(name="brand"), grpc.StatusCode.NOT_FOUND),
            (
                stub.ChangeWordList,
                wl_pb.ChangeWordListRequest(name="brand", tenant="acme", remove_words=["nope"]),
                grpc.StatusCode.NOT_FOUND,
            ),
            (
                stub.AttachWordList,
                wl_pb.AttachWordListRequest(name="brand", tenant="acme"),
                grpc.StatusCode.INVALID_ARGUMENT,
            ),
            (
                stub.AttachWordList,
                wl_pb.AttachWordListRequest(
                    name="brand", tenant="acme", kind=wl_pb.WORD_LIST_TARGET_TENANT, target="beta"
                ),
                grpc.StatusCode.FAILED_PRECONDITION,
            ),
        ]
        for method, request, code in refusals:
            with pytest.raises(grpc.RpcError) as refused:
                method(request, metadata=auth)
            assert refused.value.code() == code, (request, refused.value.details())
            assert word.lower() not in (refused.value.details() or "").lower()
        attached = stub.AttachWordList(
            wl_pb.AttachWordListRequest(
                name="brand", tenant="acme", kind=wl_pb.WORD_LIST_TARGET_TENANT, target="acme"
            ),
            metadata=auth,
        )
        assert attached.revision > made.revision

        # B applies the list on its own: acme's text is masked where the word was; beta's is untouched.
        def masked() -> bool:
            action, masked_text, _ = _generate(cluster["b"], keys["acme"])
            return action == "MASKED" and word not in masked_text

        _until(masked, "applied the attached list")
        assert _generate(cluster["b"], keys["beta"])[:2] == ("RELEASED", text)
        held_action, _, old_ticket = _generate(cluster["b"], keys["acme-review"])
        assert held_action == "HELD" and old_ticket

        changed = stub.ChangeWordList(
            wl_pb.ChangeWordListRequest(name="brand", tenant="acme", add_allow=[word]), metadata=auth
        )
        assert changed.version == 2 and list(changed.allow) == [word.lower()]
        _until(lambda: _generate(cluster["b"], keys["acme"])[:2] == ("RELEASED", text), "applied list v2")
        got = stub.GetWordList(
            wl_pb.GetWordListRequest(name="brand", tenant="acme", version=1), metadata=auth
        )
        assert (got.version, got.latest_version, list(got.allow)) == (1, 2, [])
        assert [a.target for a in got.attached] == ["acme"]
        versions = stub.ListWordListVersions(
            wl_pb.ListWordListVersionsRequest(name="brand", tenant="acme"), metadata=auth
        )
        assert [(v.version, v.word_count, v.allow_count) for v in versions.versions] == [(1, 1, 0), (2, 1, 1)]
        listed = stub.ListWordLists(wl_pb.ListWordListsRequest(tenant="acme"), metadata=auth)
        assert [(x.name, x.latest_version, list(x.words)) for x in listed.lists] == [("brand", 2, [])]

    engine = make_engine(cluster["url"])
    try:
        with Session(engine) as s:
            audited = list(s.scalars(select(AuditEvent).where(AuditEvent.event_type.like("wordlist.%"))))
            (held,) = s.scalars(select(GenerationOutput).where(GenerationOutput.ticket == old_ticket))
            recorded_scorers = [x["version"] for x in held.scorers]
    finally:
        engine.dispose()
    assert [e.event_type for e in audited] == ["wordlist.created", "wordlist.attached", "wordlist.changed"]
    assert all(e.actor.startswith("key:") and word.lower() not in str(e.payload).lower() for e in audited)
    assert any(v.endswith(f"+lists-{made.id}.1") for v in recorded_scorers), recorded_scorers

    # The held decision was made with list v1 (the word flagged); replay uses v1, not the served v2.
    replayed = CliRunner().invoke(
        cli,
        [
            "--config",
            cluster["config"],
            "replay",
            old_ticket,
            "--database-url",
            cluster["url"],
            "--offline-moderation",
            "--model",
            cluster["model"],
        ],
        catch_exceptions=False,
    )
    assert replayed.exit_code == 0, replayed.output
    assert f"replay of {old_ticket}: identical" in replayed.output, replayed.output
    assert "recorded word lists brand v1" in replayed.output
