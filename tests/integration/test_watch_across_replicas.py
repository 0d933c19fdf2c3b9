"""Two gateway replicas on one PostgreSQL database: a client watching its ticket on replica B sees the
decision a reviewer made through replica A within about one poll interval (WatchResult polls the
database, so it needs no shared process state; see docs/deployment.md for why not LISTEN/NOTIFY)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from gateway.api.v1 import generation_pb2 as gen_pb
from gateway.client import GatewayClient, action_name
from gateway.generation.generator import Generator
from gateway.storage import migrate
from gateway.storage.engine import make_engine
from moderation.types import Action
from tests.integration.conftest import (
    FLAG_SEED,
    FLAG_TOKENS,
    PROMPT,
    gateway_components,
    policy_for,
    word_moderator,
)
from tests.integration.gateway_harness import ServerThread
from tests.integration.keys import make_keys
from tests.support.pg import postgres_server

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def replicas(generator: Generator, flag_word: str) -> Iterator[tuple[ServerThread, ServerThread, str]]:
    for pg in postgres_server():
        url = pg.url_for(pg.create())
        migrate.upgrade(url)
        hold = policy_for(Action.HOLD)
        started = []
        for _ in range(2):
            moderator = word_moderator(flag_word, hold)
            components = gateway_components(generator, moderator, make_engine(url), insecure_no_auth=False)
            started.append(ServerThread(components).start())
        yield started[0], started[1], url
        for server in started:
            server.stop(grace=1)
            server.components.engine.dispose()


def test_a_watch_on_one_replica_sees_a_decision_made_on_another(
    replicas: tuple[ServerThread, ServerThread, str],
) -> None:
    a, b, url = replicas
    keys = make_keys(
        url,
        {
            "app": {"tenant": "acme", "scopes": ["generate"]},
            "rita": {"tenant": "staff", "scopes": ["review"], "reviewer": "rita"},
        },
        reviewers=["rita"],
    )
    with GatewayClient(a.address, api_key=keys["app"]) as app_on_a:
        out = app_on_a.generate(PROMPT, max_new_tokens=FLAG_TOKENS, seed=FLAG_SEED).outputs[0]
    assert action_name(out.moderation.action) == "HELD"
    seen: list[tuple[float, gen_pb.Result]] = []

    def watch_on_b() -> None:
        with GatewayClient(b.address, api_key=keys["app"]) as app_on_b:
            for result in app_on_b.watch_result(out.ticket, timeout=60):
                seen.append((time.monotonic(), result))

    watcher = threading.Thread(target=watch_on_b)
    watcher.start()
    deadline = time.monotonic() + 30
    while not seen and time.monotonic() < deadline:
        time.sleep(0.05)
    assert seen and seen[0][1].state == gen_pb.RESULT_STATE_PENDING
    with GatewayClient(a.address, api_key=keys["rita"]) as reviewer_on_a:
        item = reviewer_on_a.claim_next(lease_seconds=60)
        assert item is not None and item.ticket == out.ticket
        reviewer_on_a.decide(item, "approve")
        decided_at = time.monotonic()
    watcher.join(timeout=30)
    final_at, final = seen[-1]
    assert final.state == gen_pb.RESULT_STATE_APPROVED and final.text
    assert final_at - decided_at < 2.0, "replica B saw the decision within a few poll intervals"
