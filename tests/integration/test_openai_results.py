"""A held or blocked /v1 output after the answer: its result fetched (and appealed) over HTTP by the
same rules as gRPC's GetResult and Appeal: the key's request bucket, its tenant only, the reviewer's
decision."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import httpx
import pytest
from sqlalchemy.orm import Session

from gateway.review.queue import claim_next, decide
from gateway.review.reviewers import get_reviewer
from gateway.storage.engine import make_engine
from moderation.types import Action
from tests.integration.conftest import FLAG_SEED, FLAG_TOKENS, PROMPT
from tests.integration.gateway_harness import ServerThread
from tests.integration.keys import make_keys
from tests.support.held import hold_output

_seeded = itertools.count(1)


@pytest.fixture(scope="module")
def server(make_gateway: Callable[..., ServerThread]) -> ServerThread:
    return make_gateway(Action.HOLD, web=True, insecure_no_auth=False)


@pytest.fixture(scope="module")
def keys(db_url: str) -> dict[str, str]:
    return make_keys(
        db_url,
        {
            "app": {"tenant": "oai-results", "scopes": ["generate"]},
            "one": {"tenant": "oai-results", "scopes": ["generate"], "requests_per_minute": 1},
            "other": {"tenant": "oai-elsewhere", "scopes": ["generate"]},
            "block": {"tenant": "oai-results", "scopes": ["generate"], "policy": "test-block"},
            "block-one": {
                "tenant": "oai-results",
                "scopes": ["generate"],
                "policy": "test-block",
                "requests_per_minute": 1,
            },
        },
        reviewers=["oai-reviewer"],
    )


def seed_held(db_url: str, text: str, *, first: bool = False) -> str:
    """A held output of tenant oai-results (`first`: before any other in the queue); its ticket."""
    engine = make_engine(db_url)
    with Session(engine) as s, s.begin():
        item = hold_output(
            s,
            request_id=f"oai-results-{next(_seeded)}",
            tenant="oai-results",
            text=text,
            priority=1e9 if first else None,
        )
        ticket = item.output.ticket
    engine.dispose()
    assert ticket is not None
    return ticket


def approve(db_url: str, ticket: str) -> None:
    engine = make_engine(db_url)
    with Session(engine) as s, s.begin():
        reviewer = get_reviewer(session=s, username="oai-reviewer")
        item = claim_next(session=s, reviewer=reviewer, lease_seconds=60)
        assert item is not None and item.output.ticket == ticket
        decide(
            session=s, item_id=item.id, reviewer=reviewer, expected_version=item.version, decision="approve"
        )
    engine.dispose()


def get(server: ServerThread, ticket: str, key: str) -> httpx.Response:
    return httpx.get(
        f"{server.web_url}/v1/modgate/results/{ticket}",
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )


def test_a_result_read_takes_a_request_from_the_keys_bucket(
    server: ServerThread, keys: dict[str, str], db_url: str
) -> None:
    ticket = seed_held(db_url, "withheld words")
    assert get(server, ticket, keys["one"]).status_code == 200
    limited = get(server, ticket, keys["one"])
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
    assert limited.json()["error"]["type"] == "rate_limit_error"


def test_another_tenants_ticket_does_not_exist(
    server: ServerThread, keys: dict[str, str], db_url: str
) -> None:
    ticket = seed_held(db_url, "withheld words")
    missing = get(server, ticket, keys["other"])
    assert missing.status_code == 404 and missing.json()["error"]["param"] == "ticket"
    assert b"withheld" not in missing.content


def test_an_approved_result_carries_the_approved_text(
    server: ServerThread, keys: dict[str, str], db_url: str
) -> None:
    ticket = seed_held(db_url, "words a reviewer let through", first=True)
    pending = get(server, ticket, keys["app"]).json()
    assert pending["state"] == "pending" and pending["text"] is None
    approve(db_url, ticket)
    approved = get(server, ticket, keys["app"]).json()
    assert approved["state"] == "approved" and approved["text"] == "words a reviewer let through"


def blocked_ticket(server: ServerThread, key: str) -> str:
    """A /v1 completion the key's policy blocks; its ticket."""
    answer = httpx.post(
        f"{server.web_url}/v1/completions",
        json={"model": model_of(server), "prompt": PROMPT, "max_tokens": FLAG_TOKENS, "seed": FLAG_SEED},
        headers={"Authorization": f"Bearer {key}"},
        timeout=60,
    ).json()
    [choice] = answer["choices"]
    assert choice["modgate"]["action"] == "blocked"
    return str(choice["modgate"]["ticket"])


def model_of(server: ServerThread) -> str:
    assert server.server is not None
    return server.server.pipeline.served_model


def appeal(server: ServerThread, ticket: str, key: str, body: object = None) -> httpx.Response:
    return httpx.post(
        f"{server.web_url}/v1/modgate/results/{ticket}/appeal",
        json=body,
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )


def test_a_blocked_output_is_appealed_over_http(server: ServerThread, keys: dict[str, str]) -> None:
    ticket = blocked_ticket(server, keys["block"])
    assert get(server, ticket, keys["block"]).json()["state"] == "blocked"
    assert appeal(server, ticket, keys["other"], {"reason": "x"}).status_code == 404  # another tenant's
    bad = appeal(server, ticket, keys["block"], {"reason": "x" * 2001})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "reason"
    unknown = appeal(server, ticket, keys["block"], {"reason": "x", "urgent": True})
    assert unknown.status_code == 400 and unknown.json()["error"]["param"] == "urgent"
    appealed = appeal(server, ticket, keys["block"], {"reason": "a false positive"})
    assert appealed.status_code == 200
    assert appealed.json()["state"] == "pending" and appealed.json()["text"] is None
    assert get(server, ticket, keys["block"]).json()["state"] == "pending"
    again = appeal(server, ticket, keys["block"])  # no body: no reason
    assert again.status_code == 409 and "already in the review queue" in again.json()["error"]["message"]


def test_an_appeal_takes_a_request_from_the_keys_bucket(server: ServerThread, keys: dict[str, str]) -> None:
    ticket = blocked_ticket(server, keys["block-one"])
    limited = appeal(server, ticket, keys["block-one"], {"reason": "please"})
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
