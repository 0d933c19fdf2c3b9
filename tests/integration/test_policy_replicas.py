"""Policies versioned in the database, end to end: two real `modgate serve` replicas on one PostgreSQL
database; an operator stores and activates a new version through replica A's PolicyService and
replica B serves it without a restart; a decision made under the older version replays exactly.

Policy `custom` is seeded from the config file with `review_all = true` (v1: every output HELD, with a
ticket); v2 turns review_all off, so outputs B decides under v2 are not held and carry v2's rules hash.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.api.v1 import policy_pb2 as pol_pb
from gateway.api.v1 import policy_pb2_grpc as pol_grpc
from gateway.audit import events
from gateway.cli import cli
from gateway.client import GatewayClient, action_name
from gateway.policies.resolve import resolve
from gateway.storage.engine import make_engine
from gateway.storage.models import AuditEvent
from tests.integration.keys import make_keys
from tests.support.replicas import two_replicas

pytestmark = pytest.mark.postgres

V1 = {"description": "everything to a reviewer", "review_all": True}
V2 = {"description": "released unless flagged", "review_all": False}
CONFIG = """
[moderation.policies.custom]
description = "everything to a reviewer"
review_all = true
"""
PROMPT = "The meaning of life is"


@pytest.fixture(scope="module")
def cluster(demo_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    yield from two_replicas(demo_model_dir, tmp_path_factory.mktemp("policy-replicas"), CONFIG)


def _generate(address: str, key: str, seed: int) -> tuple[str, str, str]:
    with GatewayClient(address, api_key=key) as client:
        out = client.generate(PROMPT, max_new_tokens=12, seed=seed).outputs[0]
    return out.ticket, action_name(out.moderation.action), out.moderation.policy_version


def test_an_activation_on_one_replica_is_served_by_the_other_and_old_decisions_replay(
    cluster: dict[str, str],
) -> None:
    keys = make_keys(
        cluster["url"],
        {
            "app": {"tenant": "acme", "scopes": ["generate"], "policy": "custom"},
            "ops": {"tenant": "ops", "scopes": ["policy"]},
            "admin": {"tenant": "ops", "scopes": ["generate", "review", "audit:all"], "reviewer": "rita"},
        },
        reviewers=["rita"],
    )
    v1_hash, v2_hash = resolve({"custom": V1})["custom"].version, resolve({"custom": V2})["custom"].version
    old_ticket, old_action, old_version = _generate(cluster["b"], keys["app"], seed=5)
    assert old_version == v1_hash and old_action == "HELD" and old_ticket

    with grpc.insecure_channel(cluster["a"]) as channel:
        stub = pol_grpc.PolicyServiceStub(channel)
        for other in ("app", "admin"):  # no other scope implies `policy`
            with pytest.raises(grpc.RpcError) as denied:
                stub.ListPolicies(
                    pol_pb.ListPoliciesRequest(), metadata=[("authorization", f"Bearer {keys[other]}")]
                )
            assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
        auth = [("authorization", f"Bearer {keys['ops']}")]
        listed = stub.ListPolicies(pol_pb.ListPoliciesRequest(), metadata=auth)
        assert [(p.name, p.version, p.active) for p in listed.policies] == [("custom", 1, True)]
        with pytest.raises(grpc.RpcError) as bad:
            stub.SetPolicy(
                pol_pb.SetPolicyRequest(name="custom", policy_toml="review_all = 3"), metadata=auth
            )
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "moderation.policies.custom.review_all" in (bad.value.details() or "")
        stored = stub.SetPolicy(
            pol_pb.SetPolicyRequest(
                name="custom", policy_toml='description = "released unless flagged"\nreview_all = false\n'
            ),
            metadata=auth,
        )
        assert stored.version == 2 and not stored.active
        diff = stub.DiffPolicyVersions(
            pol_pb.DiffPolicyVersionsRequest(from_version=1, to_version=2), metadata=auth
        )
        assert "-review_all = true\n" in diff.diff and "+review_all = false\n" in diff.diff
        # Stored is not served: B still decides under v1.
        assert _generate(cluster["b"], keys["app"], seed=6)[2] == v1_hash
        activated = stub.ActivatePolicyVersion(pol_pb.ActivatePolicyVersionRequest(version=2), metadata=auth)
        assert activated.revision == 2 and activated.policy.active
        got = stub.GetPolicyVersion(pol_pb.GetPolicyVersionRequest(version=1), metadata=auth)
        assert got.name == "custom" and not got.active and got.created_by == "config:seed"
        assert got.activated_revision == 1 and "review_all = true" in got.policy_toml
        versions = stub.ListPolicyVersions(pol_pb.ListPolicyVersionsRequest(name="custom"), metadata=auth)
        assert [(v.version, v.active) for v in versions.versions] == [(1, False), (2, True)]
        assert versions.versions[1].activated_by.startswith("key:")
        refusals = [
            (stub.GetPolicyVersion, pol_pb.GetPolicyVersionRequest(version=9), grpc.StatusCode.NOT_FOUND),
            (stub.GetPolicyVersion, pol_pb.GetPolicyVersionRequest(), grpc.StatusCode.INVALID_ARGUMENT),
            (
                stub.ActivatePolicyVersion,
                pol_pb.ActivatePolicyVersionRequest(version=2),
                grpc.StatusCode.FAILED_PRECONDITION,
            ),
            (
                stub.SetPolicy,
                pol_pb.SetPolicyRequest(name="a.b", policy_toml=""),
                grpc.StatusCode.INVALID_ARGUMENT,
            ),
        ]
        for method, request, code in refusals:
            with pytest.raises(grpc.RpcError) as refused:
                method(request, metadata=auth)
            assert refused.value.code() == code, (request, refused.value.details())

    # B picks the activation up on its own (no restart, no call to B's PolicyService).
    deadline = time.monotonic() + 60
    seen: tuple[str, str, str] = ("", "", "")
    seed = 100
    while time.monotonic() < deadline:
        seen = _generate(cluster["b"], keys["app"], seed=seed)
        if seen[2] == v2_hash:
            break
        seed += 1
        time.sleep(0.1)
    assert seen[2] == v2_hash, "replica B never served the activated version"
    assert seen[1] != "HELD"

    engine = make_engine(cluster["url"])
    try:
        with Session(engine) as s:
            (event,) = s.scalars(select(AuditEvent).where(AuditEvent.event_type == events.POLICY_ACTIVATED))
            assert event.actor.startswith("key:") and event.payload["version"] == 2
    finally:
        engine.dispose()

    # The decision made under v1 replays under v1 (identical), not under the served v2 (no hold).
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
    assert "identical" in replayed.output and f"recorded version {v1_hash}" in replayed.output
