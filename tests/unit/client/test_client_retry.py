"""The retry policy both clients share, and the request builders: no server needed."""

from __future__ import annotations

from datetime import UTC, datetime

import grpc
import pytest
from google.protobuf.any_pb2 import Any as AnyProto
from google.protobuf.duration_pb2 import Duration
from google.rpc import status_pb2
from google.rpc.error_details_pb2 import RetryInfo

from gateway.api.v1 import qa_pb2 as qa_pb
from gateway.api.v1 import wordlist_pb2 as wl_pb
from gateway.client import NO_RETRY, RetryPolicy, sampling_parameters
from gateway.client import requests as build
from gateway.client.retry import next_delay, server_retry_delay


class FakeError(grpc.RpcError, grpc.Call):  # type: ignore[misc]
    """What a stub raises: an RpcError that is also a Call, with trailing metadata."""

    def __init__(self, code: grpc.StatusCode, retry_after_s: float | None = None) -> None:
        self._code = code
        self._trailing: tuple[tuple[str, bytes], ...] = ()
        if retry_after_s is not None:
            delay = Duration()
            delay.FromNanoseconds(int(retry_after_s * 1e9))
            detail = AnyProto()
            detail.Pack(RetryInfo(retry_delay=delay))
            status = status_pb2.Status(code=code.value[0], message="later", details=[detail])
            self._trailing = (("grpc-status-details-bin", status.SerializeToString()),)

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return "later"

    def trailing_metadata(self) -> tuple[tuple[str, bytes], ...]:
        return self._trailing

    def initial_metadata(self) -> tuple[()]:
        return ()

    def is_active(self) -> bool:
        return False

    def time_remaining(self) -> None:
        return None

    def cancel(self) -> bool:
        return False

    def add_callback(self, callback: object) -> bool:
        return False


EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED


def test_the_servers_retry_info_sets_the_wait() -> None:
    error = FakeError(EXHAUSTED, retry_after_s=1.5)
    assert server_retry_delay(error) == pytest.approx(1.5)
    assert next_delay(RetryPolicy(), error, attempt=1, remaining=None) == pytest.approx(1.5)


def test_no_retry_past_the_deadline_the_attempts_or_the_longest_wait() -> None:
    error = FakeError(EXHAUSTED, retry_after_s=2.0)
    assert next_delay(RetryPolicy(), error, attempt=1, remaining=1.9) is None  # would overrun the deadline
    assert next_delay(RetryPolicy(max_attempts=3), error, attempt=3, remaining=None) is None
    assert next_delay(RetryPolicy(max_wait_s=1.0), error, attempt=1, remaining=None) is None
    assert next_delay(NO_RETRY, error, attempt=1, remaining=None) is None


@pytest.mark.parametrize(
    "code", [grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.INTERNAL]
)
def test_only_unavailable_and_resource_exhausted_are_retried(code: grpc.StatusCode) -> None:
    assert next_delay(RetryPolicy(), FakeError(code, retry_after_s=0.1), attempt=1, remaining=None) is None


def test_without_retry_info_backoff_grows_with_jitter_and_a_cap() -> None:
    policy = RetryPolicy(initial_backoff_s=0.2, max_backoff_s=0.5, max_attempts=10)
    error = FakeError(grpc.StatusCode.UNAVAILABLE)
    for attempt, ceiling in ((1, 0.2), (2, 0.4), (3, 0.5), (6, 0.5)):
        delays = [next_delay(policy, error, attempt=attempt, remaining=None) for _ in range(50)]
        assert all(d is not None and ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 1  # jittered


def test_policy_and_builders_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(TypeError, match="unknown sampling parameter"):
        sampling_parameters(temprature=0.5)
    with pytest.raises(TypeError, match="not a string"):
        sampling_parameters(stop="END")
    with pytest.raises(ValueError, match="decision must be one of"):
        build.decide("item", 1, "maybe", reason="", edited_text=None)
    with pytest.raises(ValueError, match="timezone-aware"):
        build.audit_query(after_id=0, limit=10, filters={"since": datetime(2026, 1, 1)})
    with pytest.raises(TypeError, match="unknown audit filter"):
        build.audit_query(after_id=0, limit=10, filters={"tenat": "x"})  # type: ignore[typeddict-unknown-key]
    with pytest.raises(ValueError, match="kind must be one of policy, tenant"):
        build.attach_word_list("brand", "everyone", "acme", tenant="")
    with pytest.raises(ValueError, match="label must be one of harmful, fine"):
        build.label_qa_sample("s1", "meh", ())
    # A bare string would otherwise be one entry per character.
    with pytest.raises(TypeError, match="events must be a sequence of strings"):
        build.add_webhook("https://example.com/hook", "output.held")
    with pytest.raises(TypeError, match="remove_allow must be a sequence of strings"):
        build.change_word_list(
            "brand", tenant="", add_words=(), remove_words=(), add_allow=(), remove_allow="fan"
        )


def test_builders_fill_the_messages() -> None:
    assert build.review_states(["pending", "REVIEW_STATE_CLAIMED", 3]) == [1, 2, 3]
    request = build.decide("item-1", 4, "edit", reason="typo", edited_text="fixed")
    assert (request.item_id, request.expected_version, request.decision, request.edited_text) == (
        "item-1",
        4,
        2,
        "fixed",
    )
    since = datetime(2026, 11, 30, tzinfo=UTC)
    filters: build.AuditFilters = {"since": since, "ticket": "tkt_1", "actor": None}
    query = build.audit_query(after_id=7, limit=50, filters=filters)
    assert query.after_id == 7 and query.ticket == "tkt_1" and not query.actor
    assert query.since.ToDatetime(tzinfo=UTC) == since
    attach = build.attach_word_list("brand", "TENANT", "acme", tenant="acme")
    assert (attach.kind, attach.target, attach.tenant) == (wl_pb.WORD_LIST_TARGET_TENANT, "acme", "acme")
    assert build.attach_word_list("brand", wl_pb.WORD_LIST_TARGET_POLICY, "default", tenant="").kind == 1
    label = build.label_qa_sample("s1", "harmful", iter(["profanity"]))
    assert (label.label, list(label.categories)) == (qa_pb.QA_STATE_HARMFUL, ["profanity"])
    made = build.create_word_list("brand", tenant="", words=("zorblax",), allow=[])
    assert (list(made.words), list(made.allow)) == (["zorblax"], [])
    assert list(build.add_webhook("https://example.com/hook", {"output.held"}).events) == ["output.held"]
    params = sampling_parameters(temperature=0.5, stop=["END"], seed=None)
    assert params.temperature == 0.5 and list(params.stop) == ["END"] and not params.HasField("seed")


def test_the_clients_sampling_keywords_are_the_apis() -> None:
    """One list of parameters: the proto's fields, the server's RawParams and the client's keywords."""
    from gateway.api.v1 import generation_pb2 as gen_pb
    from gateway.client import PARAMETER_NAMES
    from gateway.generation.params import RawParams

    proto = set(gen_pb.SamplingParameters.DESCRIPTOR.fields_by_name)
    assert set(PARAMETER_NAMES) == proto == set(RawParams.__dataclass_fields__)
