"""A few hundred requests from many concurrent clients with released, masked, held and blocked outcomes:
every accepted request has exactly one record and one outcome per output, and the chain verifies."""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Callable

import grpc
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.audit import verify
from gateway.client import GatewayClient, action_name
from gateway.storage.apikeys import create_key
from gateway.storage.engine import make_engine
from gateway.storage.models import GenerationRequest, OutputStatus, RequestStatus
from moderation.types import Action
from tests.integration.conftest import FLAG_SEED, FLAG_TOKENS, PROMPT
from tests.integration.gateway_harness import ServerThread

pytestmark = pytest.mark.slow

CLIENTS = 16
REQUESTS = 320


def test_mixed_load(make_gateway: Callable[..., ServerThread], db_url: str) -> None:
    server = make_gateway(Action.MASK, insecure_no_auth=False, max_queue=64)
    engine = make_engine(db_url)
    with Session(engine) as s, s.begin():
        keys = {
            policy: create_key(
                session=s, tenant=f"load-{policy}", name=policy, scopes=["generate"], policy=policy
            )[1]
            for policy in ("test-mask", "test-hold", "test-block")
        }
    seen: dict[str, list[str]] = {}
    errors: list[grpc.RpcError] = []
    lock = threading.Lock()
    rng = random.Random(7)
    plan = [(f"load-{i}", rng.choice(list(keys)), rng.random() < 0.5) for i in range(REQUESTS)]

    def worker(part: list[tuple[str, str, bool]]) -> None:
        for rid, policy, flagged in part:
            with GatewayClient(server.address, api_key=keys[policy], timeout=120) as client:
                try:
                    response = client.generate(
                        PROMPT if flagged else "The garden",
                        max_new_tokens=FLAG_TOKENS if flagged else 4,
                        seed=FLAG_SEED if flagged else 1,
                        request_id=rid,
                    )
                except grpc.RpcError as exc:
                    with lock:
                        errors.append(exc)
                    continue
            with lock:
                seen[rid] = [action_name(o.moderation.action) for o in response.outputs]

    threads = [threading.Thread(target=worker, args=(plan[n::CLIENTS],)) for n in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)

    # The only acceptable refusal under load is the bounded queue saying so at once.
    assert all(e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED for e in errors), {e.code() for e in errors}
    assert len(seen) + len(errors) == REQUESTS and len(seen) >= REQUESTS // 2
    outcomes = Counter(a for actions in seen.values() for a in actions)
    assert set(outcomes) == {"RELEASED", "MASKED", "HELD", "BLOCKED"}, outcomes
    status_for = {
        "RELEASED": OutputStatus.RELEASED,
        "MASKED": OutputStatus.RELEASED,
        "HELD": OutputStatus.HELD,
        "BLOCKED": OutputStatus.BLOCKED,
    }
    with Session(engine) as s:
        rows = s.scalars(select(GenerationRequest).where(GenerationRequest.request_id.like("load-%"))).all()
        by_id = Counter(r.request_id for r in rows)
        assert all(n == 1 for n in by_id.values()), "exactly one record per request"
        assert set(by_id) == set(seen), "every accepted request is recorded; refused ones are not"
        for row in rows:
            assert row.status == RequestStatus.COMPLETED
            assert [o.status for o in row.outputs] == [status_for[a] for a in seen[row.request_id]]
            for o in row.outputs:
                # Held: the handle for the result; blocked: the handle for an appeal; released: none.
                assert (o.ticket is not None) == (o.status in (OutputStatus.HELD, OutputStatus.BLOCKED))
        assert verify(session=s).ok
    engine.dispose()
