"""`modgate webhooks`: add (secret printed once), list, remove, dead, redeliver; refusals are clean."""

from __future__ import annotations

import json
from collections.abc import Callable

from click.testing import CliRunner, Result
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from gateway.commands.webhooks import webhooks_group
from gateway.storage.models import DeliveryState, ReviewItem, WebhookDelivery, WebhookEndpoint


def _run(url: str, *args: str) -> Result:
    return CliRunner().invoke(webhooks_group, ["--database-url", url, *args], catch_exceptions=False)


def _refused(result: Result, code: int = 1) -> str:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    assert "Error" in result.stderr
    return result.stderr


def test_add_list_remove(db_url: str, db: sessionmaker[Session]) -> None:
    added = _run(
        db_url,
        "add",
        "--tenant",
        "acme",
        "--url",
        "https://hooks.example/x",
        "--event",
        "output.held",
        "--event",
        "review.decided",
    )
    assert added.exit_code == 0, added.output
    secret = added.stdout.strip()
    assert secret.startswith("whsec_") and len(secret) > 40
    assert "cannot be shown again" in added.stderr
    with db() as s:
        (endpoint,) = s.query(WebhookEndpoint).all()
        assert endpoint.secret == secret
    listed = _run(db_url, "list", "--json")
    (row,) = [json.loads(line) for line in listed.stdout.splitlines()]
    assert row["events"] == ["output.held", "review.decided"] and row["tenant"] == "acme"
    assert secret not in listed.output and secret not in _run(db_url, "list").output
    assert "no webhook endpoints" in _run(db_url, "list", "--tenant", "globex").stderr
    assert _run(db_url, "remove", row["id"]).exit_code == 0
    assert "no webhook endpoint" in _refused(_run(db_url, "remove", row["id"]))


def test_refusals_are_clean(db_url: str) -> None:
    assert "http:// or https://" in _refused(
        _run(db_url, "add", "--tenant", "a", "--url", "file:///etc", "--event", "output.held")
    )
    assert "unknown event type" in _refused(
        _run(db_url, "add", "--tenant", "a", "--url", "http://h/", "--event", "nope")
    )
    assert "--event" in _refused(_run(db_url, "add", "--tenant", "a", "--url", "http://h/"), code=2)
    assert "delivery ID or --all-dead" in _refused(_run(db_url, "redeliver"), code=2)
    assert "delivery ID or --all-dead" in _refused(_run(db_url, "redeliver", "3", "--all-dead"), code=2)
    assert "no webhook delivery 42" in _refused(_run(db_url, "redeliver", "42"))


def test_dead_and_redeliver(
    db_url: str, db: sessionmaker[Session], add_held: Callable[..., ReviewItem]
) -> None:
    assert (
        _run(
            db_url, "add", "--tenant", "acme", "--url", "http://127.0.0.1:9/", "--event", "output.held"
        ).exit_code
        == 0
    )
    items = [add_held() for _ in range(3)]
    with db() as s, s.begin():
        s.execute(update(WebhookDelivery).values(state=DeliveryState.DEAD, attempts=7, last_error="HTTP 500"))
    dead = [json.loads(line) for line in _run(db_url, "dead", "--json").stdout.splitlines()]
    assert [d["ticket"] for d in dead] == [i.output.ticket for i in items]
    assert all(
        d["attempts"] == 7 and d["last_error"] == "HTTP 500" and d["type"] == "output.held" for d in dead
    )
    assert "HTTP 500" in _run(db_url, "dead").stdout
    one = _run(db_url, "redeliver", str(dead[0]["id"]))
    assert one.exit_code == 0 and "1 webhook event(s)" in one.stdout
    assert "not dead" in _refused(_run(db_url, "redeliver", str(dead[0]["id"])))
    assert "2 webhook event(s)" in _run(db_url, "redeliver", "--all-dead").stdout
    assert "no dead webhook events" in _run(db_url, "dead").stderr
    with db() as s:
        rows = s.query(WebhookDelivery).all()
        assert {(r.state, r.attempts) for r in rows} == {(DeliveryState.PENDING, 0)}
