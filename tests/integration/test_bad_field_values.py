"""Bad ids and filter strings in every service's requests, on SQLite and PostgreSQL: a NUL or a control
character in an id, a name or a filter is INVALID_ARGUMENT naming the field, never INTERNAL.

PostgreSQL refuses NUL in any query parameter (psycopg: "PostgreSQL text fields cannot contain NUL"),
so a value that reached the database unchecked used to fail the call as INTERNAL. Generation requests
(prompts, stop sequences, sampling parameters) have their own property test beside this one
(test_bad_input_properties.py); this one covers the other services.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from gateway.api.v1 import audit_pb2 as au_pb
from gateway.api.v1 import audit_pb2_grpc as au_grpc
from gateway.api.v1 import generation_pb2 as gen_pb
from gateway.api.v1 import generation_pb2_grpc as gen_grpc
from gateway.api.v1 import policy_pb2 as pol_pb
from gateway.api.v1 import policy_pb2_grpc as pol_grpc
from gateway.api.v1 import qa_pb2 as qa_pb
from gateway.api.v1 import qa_pb2_grpc as qa_grpc
from gateway.api.v1 import review_pb2 as rv_pb
from gateway.api.v1 import review_pb2_grpc as rv_grpc
from gateway.api.v1 import webhooks_pb2 as wh_pb
from gateway.api.v1 import webhooks_pb2_grpc as wh_grpc
from gateway.api.v1 import wordlist_pb2 as wl_pb
from gateway.api.v1 import wordlist_pb2_grpc as wl_grpc
from gateway.generation.generator import Generator
from gateway.storage import migrate
from gateway.storage.engine import make_engine
from moderation.types import Action
from tests.browser.support import PASSWORD, WebHarness, csrf_of
from tests.integration.conftest import gateway_components, policy_for, word_moderator
from tests.integration.gateway_harness import ServerThread
from tests.integration.keys import make_keys
from tests.support.pg import postgres_server

NUL = "x\x00y"
AN_ID = str(uuid.uuid4())  # well-formed, names nothing


@dataclass(frozen=True)
class Gateway:
    server: ServerThread
    channel: grpc.Channel
    operator: tuple[tuple[str, str]]  # metadata of a key with every scope, bound to a reviewer
    auditor: tuple[tuple[str, str]]  # metadata of a tenant's `audit` key


def _start(generator: Generator, engine: Engine, url: str) -> Iterator[Gateway]:
    moderator = word_moderator("zzyzx", policy_for(Action.MASK, name="test-mask"))
    server = ServerThread(gateway_components(generator, moderator, engine, insecure_no_auth=False)).start()
    keys = make_keys(
        url,
        {
            "operator": {
                "tenant": "bad-fields",
                "scopes": ["generate", "review", "audit:all", "policy"],
                "reviewer": "bad-fields-admin",
            },
            "auditor": {"tenant": "bad-fields", "scopes": ["audit"]},
        },
        reviewers=["bad-fields-admin"],
    )
    channel = grpc.insecure_channel(server.address)
    yield Gateway(
        server,
        channel,
        (("authorization", f"Bearer {keys['operator']}"),),
        (("authorization", f"Bearer {keys['auditor']}"),),
    )
    channel.close()
    server.stop(grace=1)


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def gateway(
    request: pytest.FixtureRequest, generator: Generator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('bad-fields') / 'modgate.db'}"
        migrate.upgrade(url)
        engine = make_engine(url)
        yield from _start(generator, engine, url)
        engine.dispose()
        return
    for pg in postgres_server():
        url = pg.url_for(pg.create())
        migrate.upgrade(url)
        engine = make_engine(url)
        yield from _start(generator, engine, url)
        engine.dispose()


# (field as the error names it, call(channel, value, metadata)): one request string field each.
Call = Callable[[grpc.Channel, str, Any], object]


def _audit(**fields: str) -> Call:
    return lambda ch, v, md: list(
        au_grpc.AuditServiceStub(ch).Query(au_pb.AuditQuery(**{k: v for k in fields}), metadata=md)
    )


def _review(method: str, make: Callable[[str], object]) -> Call:
    return lambda ch, v, md: getattr(rv_grpc.ReviewServiceStub(ch), method)(make(v), metadata=md)


def _wordlist(method: str, make: Callable[[str], object]) -> Call:
    return lambda ch, v, md: getattr(wl_grpc.WordListServiceStub(ch), method)(make(v), metadata=md)


CASES: dict[str, tuple[str, Call]] = {
    **{f"Audit.Query.{f}": (f, _audit(**{f: ""})) for f in ("tenant", "request_id", "ticket", "actor")},
    **{f"Audit.Query.{f}": (f, _audit(**{f: ""})) for f in ("event_type", "action")},
    "Review.RenewLease.item_id": (
        "item_id",
        _review("RenewLease", lambda v: rv_pb.RenewLeaseRequest(item_id=v)),
    ),
    "Review.Decide.item_id": (
        "item_id",
        _review(
            "Decide",
            lambda v: rv_pb.DecideRequest(
                item_id=v, expected_version=1, decision=rv_pb.REVIEW_DECISION_REJECT, reason="no"
            ),
        ),
    ),
    "Review.Decide.reason": (
        "reason",
        _review(
            "Decide",
            lambda v: rv_pb.DecideRequest(
                item_id=AN_ID, expected_version=1, decision=rv_pb.REVIEW_DECISION_REJECT, reason=v
            ),
        ),
    ),
    "Review.Decide.edited_text": (
        "edited_text",
        _review(
            "Decide",
            lambda v: rv_pb.DecideRequest(
                item_id=AN_ID, expected_version=1, decision=rv_pb.REVIEW_DECISION_EDIT, edited_text=v
            ),
        ),
    ),
    "Qa.LabelQaSample.sample_id": (
        "sample_id",
        lambda ch, v, md: qa_grpc.QaServiceStub(ch).LabelQaSample(
            qa_pb.LabelQaSampleRequest(sample_id=v, label=qa_pb.QA_STATE_FINE), metadata=md
        ),
    ),
    "Qa.LabelQaSample.categories": (
        "categories",
        lambda ch, v, md: qa_grpc.QaServiceStub(ch).LabelQaSample(
            qa_pb.LabelQaSampleRequest(sample_id=AN_ID, label=qa_pb.QA_STATE_HARMFUL, categories=[v]),
            metadata=md,
        ),
    ),
    "Policy.ListPolicyVersions.name": (
        "name",
        lambda ch, v, md: pol_grpc.PolicyServiceStub(ch).ListPolicyVersions(
            pol_pb.ListPolicyVersionsRequest(name=v), metadata=md
        ),
    ),
    "Policy.SetPolicy.name": (
        "name",
        lambda ch, v, md: pol_grpc.PolicyServiceStub(ch).SetPolicy(
            pol_pb.SetPolicyRequest(name=v, policy_toml=""), metadata=md
        ),
    ),
    "WordList.Create.name": (
        "name",
        _wordlist("CreateWordList", lambda v: wl_pb.CreateWordListRequest(name=v)),
    ),
    "WordList.Create.tenant": (
        "tenant",
        _wordlist("CreateWordList", lambda v: wl_pb.CreateWordListRequest(name="l", tenant=v, words=["w"])),
    ),
    "WordList.Create.words": (
        "words",
        _wordlist("CreateWordList", lambda v: wl_pb.CreateWordListRequest(name="nul-words", words=[v])),
    ),
    "WordList.Change.name": (
        "name",
        _wordlist("ChangeWordList", lambda v: wl_pb.ChangeWordListRequest(name=v, add_words=["w"])),
    ),
    "WordList.Change.tenant": (
        "tenant",
        _wordlist(
            "ChangeWordList", lambda v: wl_pb.ChangeWordListRequest(name="l", tenant=v, add_words=["w"])
        ),
    ),
    "WordList.Get.name": ("name", _wordlist("GetWordList", lambda v: wl_pb.GetWordListRequest(name=v))),
    "WordList.Get.tenant": (
        "tenant",
        _wordlist("GetWordList", lambda v: wl_pb.GetWordListRequest(name="l", tenant=v)),
    ),
    "WordList.List.tenant": (
        "tenant",
        _wordlist("ListWordLists", lambda v: wl_pb.ListWordListsRequest(tenant=v)),
    ),
    "WordList.Versions.name": (
        "name",
        _wordlist("ListWordListVersions", lambda v: wl_pb.ListWordListVersionsRequest(name=v)),
    ),
    "WordList.Versions.tenant": (
        "tenant",
        _wordlist("ListWordListVersions", lambda v: wl_pb.ListWordListVersionsRequest(name="l", tenant=v)),
    ),
    "WordList.Attach.target": (
        "target",
        _wordlist(
            "AttachWordList",
            lambda v: wl_pb.AttachWordListRequest(name="l", kind=wl_pb.WORD_LIST_TARGET_TENANT, target=v),
        ),
    ),
    "WordList.Detach.name": (
        "name",
        _wordlist(
            "DetachWordList",
            lambda v: wl_pb.AttachWordListRequest(name=v, kind=wl_pb.WORD_LIST_TARGET_TENANT, target="t"),
        ),
    ),
    "Webhook.Add.url": (
        "url",
        lambda ch, v, md: wh_grpc.WebhookServiceStub(ch).AddWebhook(
            wh_pb.AddWebhookRequest(url=f"https://example.com/{v}"), metadata=md
        ),
    ),
    "Webhook.Add.events": (
        "events",
        lambda ch, v, md: wh_grpc.WebhookServiceStub(ch).AddWebhook(
            wh_pb.AddWebhookRequest(url="https://example.com/hook", events=[v]), metadata=md
        ),
    ),
    "Webhook.Remove.id": (
        "id",
        lambda ch, v, md: wh_grpc.WebhookServiceStub(ch).RemoveWebhook(
            wh_pb.RemoveWebhookRequest(id=v), metadata=md
        ),
    ),
    "Generation.GetResult.ticket": (
        "ticket",
        lambda ch, v, md: gen_grpc.GenerationServiceStub(ch).GetResult(
            gen_pb.GetResultRequest(ticket=v), metadata=md
        ),
    ),
    "Generation.Appeal.reason": (
        "reason",
        lambda ch, v, md: gen_grpc.GenerationServiceStub(ch).Appeal(
            gen_pb.AppealRequest(ticket="tkt_0123456789abcdef", reason=v), metadata=md
        ),
    ),
}


def refused(call: Call, gateway: Gateway, value: str, metadata: Any = None) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call(gateway.channel, value, metadata or gateway.operator)
    return info.value


def assert_names(exc: grpc.RpcError, field: str) -> None:
    assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT, (exc.code(), exc.details())
    assert exc.details().split(":", 1)[0].split("[", 1)[0] == field, exc.details()


@pytest.mark.parametrize("case", CASES)
def test_nul_in_a_request_field_is_invalid_argument_naming_it(gateway: Gateway, case: str) -> None:
    field, call = CASES[case]
    assert_names(refused(call, gateway, NUL), field)


@pytest.mark.parametrize("field", ["tenant", "request_id", "ticket", "actor", "action"])
def test_a_tenant_auditor_gets_the_same_answer(gateway: Gateway, field: str) -> None:
    """Validation comes before the tenant check: a NUL is a malformed filter whoever asks."""
    assert_names(refused(_audit(**{field: ""}), gateway, NUL, gateway.auditor), field)


@pytest.mark.parametrize("value", ["not-an-id", AN_ID.upper(), AN_ID + "0", "\x1b[2J", "a" * 10_000])
@pytest.mark.parametrize(
    "case", ["Review.RenewLease.item_id", "Review.Decide.item_id", "Qa.LabelQaSample.sample_id"]
)
def test_ids_must_have_the_generated_form(gateway: Gateway, case: str, value: str) -> None:
    field, call = CASES[case]
    assert_names(refused(call, gateway, value), field)


def test_a_well_formed_unknown_id_is_not_found(gateway: Gateway) -> None:
    for case in ("Review.RenewLease.item_id", "Qa.LabelQaSample.sample_id", "Webhook.Remove.id"):
        assert refused(CASES[case][1], gateway, AN_ID).code() == grpc.StatusCode.NOT_FOUND, case


filter_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=200) | (
    st.sampled_from(["\x00", "a\x00", "\x7f", "\u0085", "a" * 129, "a" * 10_000])
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    field=st.sampled_from(["tenant", "request_id", "ticket", "actor", "event_type", "action"]),
    value=filter_text,
)
def test_audit_filters_answer_ok_or_invalid_argument(gateway: Gateway, field: str, value: str) -> None:
    try:
        _audit(**{field: ""})(gateway.channel, value, gateway.operator)
    except grpc.RpcError as exc:
        assert_names(exc, field)


# The web pages' ids and filters, through the same checks: a URL with a malformed id names no item (404),
# a filter or a login name with a control character is a 400 naming it; never a 500.
@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def web(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebHarness]:
    tmp = tmp_path_factory.mktemp("bad-fields-web")
    if request.param == "sqlite":
        harness = WebHarness(tmp)
        yield harness
        harness.close()
        return
    for pg in postgres_server():
        url = pg.url_for(pg.create())
        migrate.upgrade(url)
        harness = WebHarness(tmp, url=url)
        yield harness
        harness.close()


@pytest.mark.parametrize("path", ["/items/x%00y", "/items/x%1B%5B2J", "/qa/x%00y", f"/items/{AN_ID}"])
def test_a_web_url_with_a_bad_id_is_not_found(web: WebHarness, path: str) -> None:
    assert web.client("ada").get(path).status_code == 404


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/audit?actor=x%00y", "actor"),
        ("/audit?tenant=x%00y", "tenant"),
        ("/audit?request_id=%1B%5B2J", "request_id"),
        ("/audit.csv?ticket=x%00y", "ticket"),
        ("/admin/policy-report?tenant=x%00y", "tenant"),
    ],
)
def test_a_web_filter_with_a_control_character_is_a_400_naming_it(
    web: WebHarness, path: str, field: str
) -> None:
    reply = web.client("ada").get(path)
    assert reply.status_code == 400 and f"{field}: must not contain control characters" in reply.text


def test_a_login_name_with_nul_is_a_400(web: WebHarness) -> None:
    client = web.client()
    token = csrf_of(client.get("/login").text)
    reply = client.post("/login", data={"username": "ada\x00", "password": PASSWORD, "csrf_token": token})
    assert reply.status_code == 400 and "username: must not contain control characters" in reply.text
    assert web.client("ada").get("/queue").status_code == 200  # and the real account still logs in
