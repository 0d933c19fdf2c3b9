"""QaService over gRPC: a reviewer-bound key lists the QA sample (with the text the client received)
and labels it; labels are final; bad labels and foreign keys get precise status codes."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import grpc
import pytest

from gateway.api.v1 import qa_pb2 as qa_pb
from gateway.api.v1 import qa_pb2_grpc as qa_grpc
from gateway.client import GatewayClient, action_name
from moderation.types import Action
from tests.integration.conftest import FLAG_SEED, FLAG_TOKENS, PROMPT
from tests.integration.gateway_harness import ServerThread
from tests.integration.keys import make_keys


@pytest.fixture(scope="module")
def server(make_gateway: Callable[..., ServerThread]) -> ServerThread:
    return make_gateway(
        Action.MASK, insecure_no_auth=False, review={"qa": {"test-mask": {"sample_rate": 1.0}}}
    )


@pytest.fixture(scope="module")
def keys(db_url: str) -> dict[str, str]:
    return make_keys(
        db_url,
        {
            "qa-client": {"tenant": "acme", "scopes": ["generate"]},
            "qa-rita": {"tenant": "staff", "scopes": ["review"], "reviewer": "qa-rita"},
            "qa-ravi": {"tenant": "staff", "scopes": ["review"], "reviewer": "qa-ravi"},
        },
        reviewers=["qa-rita", "qa-ravi"],
    )


@pytest.fixture(scope="module")
def stub(server: ServerThread) -> Iterator[qa_grpc.QaServiceStub]:
    with grpc.insecure_channel(server.address) as channel:
        yield qa_grpc.QaServiceStub(channel)


def md(key: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {key}"),)


def refused(call: Callable[[], object]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value


def test_a_reviewer_labels_the_sample_over_grpc(
    server: ServerThread, keys: dict[str, str], stub: qa_grpc.QaServiceStub, flag_word: str
) -> None:
    with GatewayClient(server.address, api_key=keys["qa-client"]) as client:
        response = client.generate([PROMPT, "The garden"], max_new_tokens=FLAG_TOKENS, seed=FLAG_SEED)
    sent = {action_name(o.moderation.action): o.text for o in response.outputs}
    assert set(sent) == {"MASKED", "RELEASED"}

    listed = stub.ListQaSamples(qa_pb.ListQaSamplesRequest(limit=500), metadata=md(keys["qa-rita"]))
    mine = {s.released_text: s for s in listed.samples if s.request_id == response.request_id}
    assert set(mine) == set(sent.values()), "each sample shows exactly what its client received"
    masked = mine[sent["MASKED"]]
    assert masked.masked and flag_word not in masked.released_text and masked.tenant == "acme"
    assert masked.state == qa_pb.QA_STATE_PENDING and masked.sample_rate == 1.0
    assert masked.label_choices[-1] == "other" and "profanity" in masked.label_choices

    labelled = stub.LabelQaSample(
        qa_pb.LabelQaSampleRequest(
            sample_id=masked.id, label=qa_pb.QA_STATE_HARMFUL, categories=["profanity"]
        ),
        metadata=md(keys["qa-rita"]),
    )
    assert labelled.state == qa_pb.QA_STATE_HARMFUL and labelled.labelled_by == "qa-rita"
    assert list(labelled.categories) == ["profanity"] and labelled.HasField("labelled_at")

    late = refused(
        lambda: stub.LabelQaSample(
            qa_pb.LabelQaSampleRequest(sample_id=masked.id, label=qa_pb.QA_STATE_FINE),
            metadata=md(keys["qa-ravi"]),
        )
    )
    assert late.code() == grpc.StatusCode.FAILED_PRECONDITION and "already labelled harmful" in str(
        late.details()
    )
    again = stub.ListQaSamples(qa_pb.ListQaSamplesRequest(limit=500), metadata=md(keys["qa-ravi"]))
    assert masked.id not in {s.id for s in again.samples}


@pytest.mark.parametrize(
    ("request_fields", "code", "message"),
    [
        ({"label": qa_pb.QA_STATE_PENDING}, grpc.StatusCode.INVALID_ARGUMENT, "label: must be"),
        ({"label": qa_pb.QA_STATE_HARMFUL}, grpc.StatusCode.INVALID_ARGUMENT, "at least one category"),
        (
            {"label": qa_pb.QA_STATE_FINE, "categories": ["profanity"]},
            grpc.StatusCode.INVALID_ARGUMENT,
            "a fine label names no categories",
        ),
        (
            {"label": qa_pb.QA_STATE_HARMFUL, "categories": ["nonsense"]},
            grpc.StatusCode.INVALID_ARGUMENT,
            "unknown for this output",
        ),
        (
            {"label": qa_pb.QA_STATE_FINE, "sample_id": "00000000-0000-4000-8000-000000000000"},
            grpc.StatusCode.NOT_FOUND,
            "not found",
        ),
        (
            {"label": qa_pb.QA_STATE_FINE, "sample_id": "missing"},
            grpc.StatusCode.INVALID_ARGUMENT,
            "sample_id: ",
        ),
    ],
)
def test_bad_labels_get_precise_codes(
    server: ServerThread,
    keys: dict[str, str],
    stub: qa_grpc.QaServiceStub,
    request_fields: dict[str, object],
    code: grpc.StatusCode,
    message: str,
) -> None:
    with GatewayClient(server.address, api_key=keys["qa-client"]) as client:
        client.generate("The garden", max_new_tokens=4, seed=1)
    (pending, *_) = stub.ListQaSamples(qa_pb.ListQaSamplesRequest(), metadata=md(keys["qa-rita"])).samples
    fields = {"sample_id": pending.id, **request_fields}
    error = refused(
        lambda: stub.LabelQaSample(qa_pb.LabelQaSampleRequest(**fields), metadata=md(keys["qa-rita"]))
    )  # type: ignore[arg-type]
    assert error.code() == code and message in str(error.details())


def test_keys_without_a_reviewer_are_refused(keys: dict[str, str], stub: qa_grpc.QaServiceStub) -> None:
    client = refused(lambda: stub.ListQaSamples(qa_pb.ListQaSamplesRequest(), metadata=md(keys["qa-client"])))
    assert client.code() == grpc.StatusCode.PERMISSION_DENIED and "'review' scope" in str(client.details())
    too_many = refused(
        lambda: stub.ListQaSamples(qa_pb.ListQaSamplesRequest(limit=501), metadata=md(keys["qa-rita"]))
    )
    assert too_many.code() == grpc.StatusCode.INVALID_ARGUMENT and "limit" in str(too_many.details())
