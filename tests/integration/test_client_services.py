"""The clients cover every service: a held output's ticket is watched, claimed and approved by a reviewer
client, read back, and found in the audit log; a blocked one is appealed; an operator stores, diffs and
activates policy versions and edits, attaches and detaches word lists; a tenant adds and removes its
webhooks; a reviewer labels the QA sample. Sync and asyncio alike, with refusals as their status codes,
and every RPC in the protos has a method on both clients."""

from __future__ import annotations

import importlib
import inspect
import re
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
import pytest

from gateway.api.v1 import generation_pb2 as gen_pb
from gateway.api.v1 import qa_pb2 as qa_pb
from gateway.api.v1 import review_pb2 as rv_pb
from gateway.api.v1 import wordlist_pb2 as wl_pb
from gateway.client import AsyncGatewayClient, GatewayClient, action_name
from moderation.types import Action
from tests.integration.conftest import FLAG_SEED, FLAG_TOKENS, PROMPT
from tests.integration.gateway_harness import ServerThread
from tests.integration.keys import make_keys


@pytest.fixture(scope="module")
def server(make_gateway: Callable[..., ServerThread]) -> ServerThread:
    # Outputs decided under test-mask (the `masked` key's policy) are all drawn into the QA sample.
    return make_gateway(
        Action.HOLD, insecure_no_auth=False, review={"qa": {"test-mask": {"sample_rate": 1.0}}}
    )


@pytest.fixture(scope="module")
def keys(db_url: str) -> dict[str, str]:
    return make_keys(
        db_url,
        {
            "app": {"tenant": "client-co", "scopes": ["generate"]},
            "blocked": {"tenant": "client-co", "scopes": ["generate"], "policy": "test-block"},
            "cleo": {"tenant": "staff", "scopes": ["review"], "reviewer": "cleo"},
            "ops": {"tenant": "staff", "scopes": ["audit:all"]},
            "masked": {"tenant": "client-co", "scopes": ["generate"], "policy": "test-mask"},
            "operator": {"tenant": "staff", "scopes": ["policy"]},
            # Every other scope, and still not `policy`: operators' changes need it named.
            "admin": {"tenant": "staff", "scopes": ["generate", "review", "audit:all"], "reviewer": "cleo"},
            "hooks": {"tenant": "client-hooks", "scopes": ["generate"]},
            "hooks-other": {"tenant": "client-hooks-other", "scopes": ["generate"]},
        },
        reviewers=["cleo"],
    )


def claim(reviewer: GatewayClient, ticket: str) -> rv_pb.ReviewItem:
    """Claims until it holds `ticket`'s item (items other tests left are rejected)."""
    for _ in range(50):
        item = reviewer.claim_next(lease_seconds=60)
        assert item is not None, f"ticket {ticket} never came up"
        if item.ticket == ticket:
            return item
        reviewer.decide(item, "reject", reason="not this test's")
    raise AssertionError("queue did not drain")


def test_a_held_output_from_ticket_to_approved_text(server: ServerThread, keys: dict[str, str]) -> None:
    with (
        GatewayClient(server.address, api_key=keys["app"]) as app,
        GatewayClient(server.address, api_key=keys["cleo"]) as reviewer,
        GatewayClient(server.address, api_key=keys["ops"]) as ops,
    ):
        out = app.generate(PROMPT, max_new_tokens=FLAG_TOKENS, seed=FLAG_SEED).outputs[0]
        assert action_name(out.moderation.action) == "HELD" and not out.text
        assert app.get_result(out.ticket).state == gen_pb.RESULT_STATE_PENDING
        watch = app.watch_result(out.ticket, timeout=30)
        assert next(watch).state == gen_pb.RESULT_STATE_PENDING
        assert any(i.ticket == out.ticket for i in reviewer.list_items(states=["pending"], limit=500))
        item = claim(reviewer, out.ticket)
        item = reviewer.renew_lease(item.id, lease_seconds=120)
        decided = reviewer.decide(item, "edit", edited_text="A kinder text.", reason="reworded")
        assert decided.state == rv_pb.REVIEW_STATE_EDITED
        final = next(r for r in watch if r.state != gen_pb.RESULT_STATE_PENDING)
        assert final.state == gen_pb.RESULT_STATE_EDITED and final.text == "A kinder text."
        assert app.get_result(out.ticket).text == "A kinder text."
        events = ops.audit_query(ticket=out.ticket, event_type="review.*", limit=50)
        assert {"review.held", "review.claimed", "review.edited"} <= {e.event_type for e in events}
        assert ops.audit_verify().ok


def test_a_blocked_output_is_appealed(server: ServerThread, keys: dict[str, str]) -> None:
    with GatewayClient(server.address, api_key=keys["blocked"]) as app:
        out = app.generate(PROMPT, max_new_tokens=FLAG_TOKENS, seed=FLAG_SEED).outputs[0]
        assert action_name(out.moderation.action) == "BLOCKED"
        assert app.get_result(out.ticket).state == gen_pb.RESULT_STATE_BLOCKED
        assert app.appeal(out.ticket, "a false positive").state == gen_pb.RESULT_STATE_PENDING


async def test_the_asyncio_client_covers_the_same_services(
    server: ServerThread, keys: dict[str, str]
) -> None:
    async with (
        AsyncGatewayClient(server.address, api_key=keys["app"]) as app,
        AsyncGatewayClient(server.address, api_key=keys["cleo"]) as reviewer,
        AsyncGatewayClient(server.address, api_key=keys["ops"]) as ops,
    ):
        out = (await app.generate(PROMPT, max_new_tokens=FLAG_TOKENS, seed=FLAG_SEED)).outputs[0]
        streamed = [m async for m in app.generate_stream(PROMPT, max_new_tokens=4, seed=3)]
        assert streamed[0].WhichOneof("event") == "start" and streamed[-1].WhichOneof("event") == "final"
        assert (await app.get_result(out.ticket)).state == gen_pb.RESULT_STATE_PENDING
        for _ in range(50):
            item = await reviewer.claim_next(lease_seconds=60)
            assert item is not None
            if item.ticket == out.ticket:
                break
            await reviewer.decide(item, "reject", reason="not this test's")
        await reviewer.decide(item, "approve")
        watched = [r async for r in app.watch_result(out.ticket, timeout=30)]
        assert watched[-1].state == gen_pb.RESULT_STATE_APPROVED and watched[-1].text
        assert await ops.audit_query(ticket=out.ticket, limit=100)
        assert (await ops.audit_verify()).ok
        assert await reviewer.list_items(states=["approved"], limit=10)


def refused(call: Callable[[], object]) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        call()
    error = info.value
    assert isinstance(error, grpc.Call | grpc.aio.AioRpcError)
    return error.code(), error.details() or ""


async def refused_async(call: Callable[[], Awaitable[object]]) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call()
    return info.value.code(), info.value.details() or ""


# PolicyService


def test_an_operator_stores_diffs_and_activates_a_policy(server: ServerThread, keys: dict[str, str]) -> None:
    name = "client-sync"
    with GatewayClient(server.address, api_key=keys["operator"]) as ops:
        first = ops.set_policy(name, 'description = "all to a reviewer"\nreview_all = true\n')
        assert first.name == name and not first.active and first.created_by.startswith("key:")
        activated = ops.activate_policy_version(first.version)
        assert activated.policy.active and activated.policy.activated_revision == activated.revision
        second = ops.set_policy(name, 'description = "released unless flagged"\nreview_all = false\n')
        diff = ops.diff_policy_versions(first.version, second.version)
        assert "-review_all = true\n" in diff and "+review_all = false\n" in diff
        assert ops.diff_policy_versions(second.version, second.version) == ""
        served = ops.list_policies()
        assert {p.name: p.version for p in served.policies}[name] == first.version
        assert served.revision >= activated.revision
        history = ops.list_policy_versions(name=name)
        assert [(v.version, v.active) for v in history] == [(first.version, True), (second.version, False)]
        got = ops.get_policy_version(second.version)
        assert got.name == name and "review_all = false" in got.policy_toml and not got.activated_revision

        code, details = refused(lambda: ops.set_policy(name, "review_all = 3"))
        assert (
            code == grpc.StatusCode.INVALID_ARGUMENT and f"moderation.policies.{name}.review_all" in details
        )
        code, _ = refused(lambda: ops.activate_policy_version(first.version))
        assert code == grpc.StatusCode.FAILED_PRECONDITION
        assert refused(lambda: ops.get_policy_version(10**9))[0] == grpc.StatusCode.NOT_FOUND
        assert refused(lambda: ops.get_policy_version(0))[0] == grpc.StatusCode.INVALID_ARGUMENT


async def test_the_asyncio_client_manages_policies(server: ServerThread, keys: dict[str, str]) -> None:
    name = "client-aio"
    async with AsyncGatewayClient(server.address, api_key=keys["operator"]) as ops:
        first = await ops.set_policy(name, "review_all = true\n")
        second = await ops.set_policy(name, "review_all = false\n")
        activated = await ops.activate_policy_version(second.version)
        assert activated.policy.version == second.version and activated.policy.activated_by.startswith("key:")
        assert "+review_all = false\n" in await ops.diff_policy_versions(first.version, second.version)
        served = {p.name: p for p in (await ops.list_policies()).policies}
        assert served[name].version == second.version and served[name].active
        history = await ops.list_policy_versions(name=name)
        assert [(v.version, v.active) for v in history] == [(first.version, False), (second.version, True)]
        assert "review_all = true" in (await ops.get_policy_version(first.version)).policy_toml
        code, _ = await refused_async(lambda: ops.activate_policy_version(second.version))
        assert code == grpc.StatusCode.FAILED_PRECONDITION
        code, _ = await refused_async(lambda: ops.set_policy("a.b", "review_all = true\n"))
        assert code == grpc.StatusCode.INVALID_ARGUMENT


# WordListService


def test_an_operator_edits_attaches_and_detaches_a_word_list(
    server: ServerThread, keys: dict[str, str]
) -> None:
    name, owner = "client-sync-brand", "client-co"
    with GatewayClient(server.address, api_key=keys["operator"]) as ops:
        made = ops.create_word_list(name, tenant=owner, words=["zorblax", "# a comment"])
        assert (made.version, list(made.words), made.tenant) == (1, ["zorblax"], owner)
        changed = ops.change_word_list(name, tenant=owner, add_words=["flimflam"], add_allow=["zorblax fan"])
        assert (changed.version, changed.word_count, changed.allow_count) == (2, 2, 1)
        revision = ops.attach_word_list(name, "tenant", owner, tenant=owner)
        got = ops.get_word_list(name, tenant=owner)
        assert set(got.words) == {"zorblax", "flimflam"} and list(got.allow) == ["zorblax fan"]
        assert [(a.kind, a.target, a.revision) for a in got.attached] == [
            (wl_pb.WORD_LIST_TARGET_TENANT, owner, revision)
        ]
        assert list(ops.get_word_list(name, tenant=owner, version=1).words) == ["zorblax"]
        listed = {w.name: w for w in ops.list_word_lists(tenant=owner)}
        assert listed[name].latest_version == 2 and listed[name].word_count == 2 and not listed[name].words
        assert name not in {w.name for w in ops.list_word_lists(only_global=True)}
        versions = ops.list_word_list_versions(name, tenant=owner)
        assert [v.version for v in versions] == [1, 2]
        assert ops.detach_word_list(name, "tenant", owner, tenant=owner) > revision
        assert not ops.get_word_list(name, tenant=owner).attached

        code, _ = refused(lambda: ops.create_word_list(name, tenant=owner))
        assert code == grpc.StatusCode.ALREADY_EXISTS
        code, details = refused(lambda: ops.attach_word_list(name, "policy", "default", tenant=owner))
        assert code == grpc.StatusCode.FAILED_PRECONDITION and "belongs to a tenant" in details
        code, _ = refused(lambda: ops.change_word_list(name, tenant=owner, remove_words=["not-there"]))
        assert code == grpc.StatusCode.NOT_FOUND
        code, _ = refused(lambda: ops.detach_word_list(name, "tenant", owner, tenant=owner))
        assert code == grpc.StatusCode.FAILED_PRECONDITION
        with pytest.raises(ValueError, match="kind must be one of policy, tenant"):
            ops.attach_word_list(name, "everyone", owner, tenant=owner)
        with pytest.raises(TypeError, match="add_words must be a sequence of strings"):
            ops.change_word_list(name, tenant=owner, add_words="spam")


async def test_the_asyncio_client_manages_a_global_word_list(
    server: ServerThread, keys: dict[str, str]
) -> None:
    name = "client-aio-global"
    async with AsyncGatewayClient(server.address, api_key=keys["operator"]) as ops:
        made = await ops.create_word_list(name, words=["zorblax"])
        assert made.tenant == "" and made.version == 1
        changed = await ops.change_word_list(name, add_words=["quux*"], remove_words=["zorblax"])
        assert (changed.version, list(changed.words)) == (2, ["quux*"])
        revision = await ops.attach_word_list(name, wl_pb.WORD_LIST_TARGET_POLICY, "default")
        got = await ops.get_word_list(name)
        assert [(a.kind, a.target, a.revision) for a in got.attached] == [
            (wl_pb.WORD_LIST_TARGET_POLICY, "default", revision)
        ]
        assert name in {w.name for w in await ops.list_word_lists(only_global=True)}
        assert [v.word_count for v in await ops.list_word_list_versions(name)] == [1, 1]
        assert await ops.detach_word_list(name, "policy", "default") > revision
        code, _ = await refused_async(lambda: ops.attach_word_list(name, "policy", "no-such-policy"))
        assert code == grpc.StatusCode.NOT_FOUND
        code, _ = await refused_async(lambda: ops.get_word_list(name, version=9))
        assert code == grpc.StatusCode.NOT_FOUND


# WebhookService


def test_a_tenant_adds_lists_and_removes_its_webhooks(server: ServerThread, keys: dict[str, str]) -> None:
    with (
        GatewayClient(server.address, api_key=keys["hooks"]) as tenant,
        GatewayClient(server.address, api_key=keys["hooks-other"]) as other,
    ):
        added = tenant.add_webhook("https://hooks.example.com/modgate", ["review.decided", "output.held"])
        assert added.secret.startswith("whsec_") and added.webhook.id
        assert list(added.webhook.events) == ["output.held", "review.decided"]
        listed = {w.id: w for w in tenant.list_webhooks()}
        assert listed[added.webhook.id].url == "https://hooks.example.com/modgate"
        # Another tenant neither sees nor removes it.
        assert added.webhook.id not in {w.id for w in other.list_webhooks()}
        assert refused(lambda: other.remove_webhook(added.webhook.id))[0] == grpc.StatusCode.NOT_FOUND
        tenant.remove_webhook(added.webhook.id)
        assert added.webhook.id not in {w.id for w in tenant.list_webhooks()}

        code, details = refused(lambda: tenant.add_webhook("ftp://hooks.example.com/", ["output.held"]))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "url" in details
        code, details = refused(lambda: tenant.add_webhook("https://hooks.example.com/", ["output.eaten"]))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "events" in details
        with pytest.raises(TypeError, match="events must be a sequence of strings"):
            tenant.add_webhook("https://hooks.example.com/", "output.held")


async def test_the_asyncio_client_manages_webhooks(server: ServerThread, keys: dict[str, str]) -> None:
    async with AsyncGatewayClient(server.address, api_key=keys["hooks"]) as tenant:
        added = await tenant.add_webhook("http://127.0.0.1:9/hook", ["appeal.opened"])
        assert added.secret.startswith("whsec_")
        assert added.webhook.id in {w.id for w in await tenant.list_webhooks()}
        await tenant.remove_webhook(added.webhook.id)
        assert added.webhook.id not in {w.id for w in await tenant.list_webhooks()}
        code, _ = await refused_async(lambda: tenant.remove_webhook(added.webhook.id))
        assert code == grpc.StatusCode.NOT_FOUND


# QaService


def test_a_reviewer_labels_the_qa_sample(server: ServerThread, keys: dict[str, str], flag_word: str) -> None:
    with (
        GatewayClient(server.address, api_key=keys["masked"]) as app,
        GatewayClient(server.address, api_key=keys["cleo"]) as reviewer,
    ):
        response = app.generate([PROMPT, "The garden"], max_new_tokens=FLAG_TOKENS, seed=FLAG_SEED)
        sent = {action_name(o.moderation.action): o.text for o in response.outputs}
        assert set(sent) == {"MASKED", "RELEASED"}
        mine = {
            s.released_text: s
            for s in reviewer.list_qa_samples(limit=500)
            if s.request_id == response.request_id
        }
        assert set(mine) == set(sent.values()), "each sample shows what its client received"
        masked, released = mine[sent["MASKED"]], mine[sent["RELEASED"]]
        assert masked.masked and flag_word not in masked.released_text and "profanity" in masked.label_choices

        harmful = reviewer.label_qa_sample(masked.id, "harmful", categories=["profanity"])
        assert harmful.state == qa_pb.QA_STATE_HARMFUL and harmful.labelled_by == "cleo"
        assert list(harmful.categories) == ["profanity"]
        fine = reviewer.label_qa_sample(released.id, "FINE")
        assert fine.state == qa_pb.QA_STATE_FINE and not fine.categories
        remaining = {s.id for s in reviewer.list_qa_samples(limit=500)}
        assert not {masked.id, released.id} & remaining

        code, details = refused(lambda: reviewer.label_qa_sample(masked.id, "fine"))
        assert code == grpc.StatusCode.FAILED_PRECONDITION and "already labelled" in details
        unknown = str(uuid.uuid4())
        assert refused(lambda: reviewer.label_qa_sample(unknown, "fine"))[0] == grpc.StatusCode.NOT_FOUND
        assert (
            refused(lambda: reviewer.label_qa_sample("missing", "fine"))[0]
            == grpc.StatusCode.INVALID_ARGUMENT
        )
        assert refused(lambda: reviewer.list_qa_samples(limit=501))[0] == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(ValueError, match="label must be one of harmful, fine"):
            reviewer.label_qa_sample(masked.id, "pending")


async def test_the_asyncio_client_labels_the_qa_sample(server: ServerThread, keys: dict[str, str]) -> None:
    async with (
        AsyncGatewayClient(server.address, api_key=keys["masked"]) as app,
        AsyncGatewayClient(server.address, api_key=keys["cleo"]) as reviewer,
    ):
        response = await app.generate(PROMPT, max_new_tokens=FLAG_TOKENS, seed=FLAG_SEED)
        (sample,) = [
            s for s in await reviewer.list_qa_samples(limit=500) if s.request_id == response.request_id
        ]
        assert sample.state == qa_pb.QA_STATE_PENDING and sample.released_text == response.outputs[0].text
        code, details = await refused_async(lambda: reviewer.label_qa_sample(sample.id, "harmful"))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "at least one category" in details
        labelled = await reviewer.label_qa_sample(sample.id, qa_pb.QA_STATE_HARMFUL, categories=["other"])
        assert labelled.state == qa_pb.QA_STATE_HARMFUL and list(labelled.categories) == ["other"]


# Keys outside a service's scope, through both clients.

SCOPE_REFUSALS = [
    ("list_policies", "admin"),  # no other scope implies `policy`
    ("list_word_lists", "app"),
    ("list_webhooks", "cleo"),  # a review key manages no webhooks
    ("list_qa_samples", "app"),  # not a reviewer's key
    ("list_qa_samples", "operator"),
]


@pytest.mark.parametrize(("method", "key"), SCOPE_REFUSALS)
def test_a_key_outside_the_scope_is_permission_denied(
    server: ServerThread, keys: dict[str, str], method: str, key: str
) -> None:
    with GatewayClient(server.address, api_key=keys[key]) as client:
        assert refused(getattr(client, method))[0] == grpc.StatusCode.PERMISSION_DENIED
    with GatewayClient(server.address) as anonymous:
        assert refused(getattr(anonymous, method))[0] == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize(("method", "key"), SCOPE_REFUSALS)
async def test_the_asyncio_client_gets_the_same_refusals(
    server: ServerThread, keys: dict[str, str], method: str, key: str
) -> None:
    async with AsyncGatewayClient(server.address, api_key=keys[key]) as client:
        code, _ = await refused_async(getattr(client, method))
    assert code == grpc.StatusCode.PERMISSION_DENIED


# Coverage: a new RPC without a client method fails here.

PROTOS = Path(__file__).resolve().parents[2] / "protos" / "gateway" / "api" / "v1"
# The AuditService's generic names, prefixed on the clients, which serve every service at once.
ALIASES = {"modgate.v1.AuditService.Query": "audit_query", "modgate.v1.AuditService.Verify": "audit_verify"}


def rpc_methods() -> dict[str, tuple[str, bool]]:
    """Every RPC of every service in protos/: its full name -> (the clients' method name, whether the
    server streams)."""
    found = {}
    for proto in sorted(PROTOS.glob("*.proto")):
        module = importlib.import_module(f"gateway.api.v1.{proto.stem}_pb2")
        for service in module.DESCRIPTOR.services_by_name.values():
            for rpc in service.methods:
                snake = re.sub(r"(?<!^)(?=[A-Z])", "_", rpc.name).lower()
                found[rpc.full_name] = (ALIASES.get(rpc.full_name, snake), rpc.server_streaming)
    return found


def test_every_rpc_in_the_protos_has_a_method_on_both_clients() -> None:
    rpcs = rpc_methods()
    services = {name.rsplit(".", 1)[0] for name in rpcs}
    assert {f"modgate.v1.{s}Service" for s in ("Generation", "Review", "Audit", "Qa", "Webhook")} <= services
    assert {"modgate.v1.PolicyService", "modgate.v1.WordListService"} <= services
    missing = [
        f"{rpc}: {client.__name__}.{method}"
        for rpc, (method, _) in rpcs.items()
        for client in (GatewayClient, AsyncGatewayClient)
        if not callable(getattr(client, method, None))
    ]
    assert not missing, f"RPCs without a client method: {missing}"
    not_awaitable = [
        method
        for method, streams in rpcs.values()
        if not streams and not inspect.iscoroutinefunction(getattr(AsyncGatewayClient, method))
    ]
    assert not not_awaitable, f"unary calls the asyncio client does not await: {not_awaitable}"


def test_both_clients_take_the_same_arguments() -> None:
    public = {n for n in dir(GatewayClient) if not n.startswith("_")}
    assert public == {n for n in dir(AsyncGatewayClient) if not n.startswith("_")}
    for name in public:
        sync, aio = getattr(GatewayClient, name), getattr(AsyncGatewayClient, name)
        if callable(sync):
            assert inspect.signature(sync).parameters == inspect.signature(aio).parameters, name
