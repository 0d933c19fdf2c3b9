"""Refused calls write nothing to the audit chain: no key, a key outside its scope, invalid input, a
malformed id, over the rate limit. Each would otherwise be an audit write that anyone could trigger at
will (docs/operations.md, "Security model"); an admitted request is audited from request.received on."""

from __future__ import annotations

from collections.abc import Callable

import grpc
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.api.v1 import audit_pb2 as au_pb
from gateway.api.v1 import audit_pb2_grpc as au_grpc
from gateway.api.v1 import generation_pb2 as gen_pb
from gateway.api.v1 import generation_pb2_grpc as gen_grpc
from gateway.client import sampling_parameters
from gateway.storage.engine import make_engine
from gateway.storage.models import AuditEvent
from moderation.types import Action
from tests.integration.gateway_harness import ServerThread
from tests.integration.keys import make_keys


@pytest.fixture(scope="module")
def server(make_gateway: Callable[..., ServerThread]) -> ServerThread:
    return make_gateway(Action.MASK, insecure_no_auth=False)


@pytest.fixture(scope="module")
def keys(db_url: str) -> dict[str, str]:
    return make_keys(
        db_url,
        {
            "one-a-minute": {"tenant": "refused", "scopes": ["generate"], "requests_per_minute": 1},
            "auditor": {"tenant": "refused", "scopes": ["audit"]},
        },
    )


def head(db_url: str) -> int:
    engine = make_engine(db_url)
    with Session(engine) as s:
        last = s.scalar(select(func.max(AuditEvent.id))) or 0
    engine.dispose()
    return last


def generate(server: ServerThread, key: str | None, **parameters: object) -> None:
    with grpc.insecure_channel(server.address) as channel:
        metadata = (("authorization", f"Bearer {key}"),) if key else None
        gen_grpc.GenerationServiceStub(channel).Generate(
            gen_pb.GenerateRequest(
                input_string=["The garden"],
                parameters=sampling_parameters(**{"max_new_tokens": 2, **parameters}),  # type: ignore[arg-type]
            ),
            metadata=metadata,
            timeout=60,
        )


def test_refused_calls_leave_no_audit_event(server: ServerThread, keys: dict[str, str], db_url: str) -> None:
    def audit_query(key: str, **fields: str) -> None:
        with grpc.insecure_channel(server.address) as channel:
            list(
                au_grpc.AuditServiceStub(channel).Query(
                    au_pb.AuditQuery(**fields), metadata=(("authorization", f"Bearer {key}"),), timeout=30
                )
            )

    refusals: dict[str, tuple[Callable[[], None], grpc.StatusCode]] = {
        "no key": (lambda: generate(server, None), grpc.StatusCode.UNAUTHENTICATED),
        "unknown key": (lambda: generate(server, "mg_00000000_" + "x" * 43), grpc.StatusCode.UNAUTHENTICATED),
        "outside its scope": (lambda: generate(server, keys["auditor"]), grpc.StatusCode.PERMISSION_DENIED),
        "invalid input": (
            lambda: generate(server, keys["one-a-minute"], top_p=2.0),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        "malformed filter": (
            lambda: audit_query(keys["auditor"], actor="x\x00y"),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
    }
    for name, (call, code) in refusals.items():
        before = head(db_url)
        with pytest.raises(grpc.RpcError) as info:
            call()
        assert info.value.code() == code, name
        assert head(db_url) == before, f"{name}: audited"

    before = head(db_url)
    generate(server, keys["one-a-minute"])  # admitted: audited
    admitted = head(db_url)
    assert admitted > before
    with pytest.raises(grpc.RpcError) as info:
        generate(server, keys["one-a-minute"])
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert head(db_url) == admitted, "over the rate limit: audited"
