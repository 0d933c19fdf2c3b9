"""`kill -9` of a real `modgate serve` while it is sending webhooks (committed, not yet recorded as
delivered), and events committed while it is down: after a restart every event is delivered, none lost."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from gateway.storage import make_engine, make_session_factory, migrate
from gateway.storage.models import DeliveryState, WebhookDelivery
from gateway.webhooks.endpoints import create_endpoint
from tests.support.held import hold_output
from tests.support.serve_process import free_ports, serve_command, spawn_serve, wait_serving
from tests.support.webhook_receiver import Receiver

pytestmark = pytest.mark.slow


def start(demo_model_dir: Path, address: str, database_url: str) -> subprocess.Popen[str]:
    return spawn_serve(
        serve_command(
            demo_model_dir,
            insecure_no_auth=True,
            grpc_address=address,
            no_web=True,
            metrics_address="",
            database_url=database_url,
        ),
        MODGATE_WEBHOOK_POLL_INTERVAL_S="0.2",
        MODGATE_WEBHOOK_TIMEOUT_S="3",
        MODGATE_WEBHOOK_RETRY_BASE_S="0.2",
    )


def hold(sessions: Any, n: int) -> str:
    """Commits a held output (and with it its `output.held` event) as the gateway's recorder does."""
    with sessions() as s, s.begin():
        return str(hold_output(s, request_id=f"k9-{n}", actor="gateway").output.ticket)


def wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_kill_9_between_commit_and_delivery_loses_nothing(demo_model_dir: Path, tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path / 'hooks.db'}"
    migrate.upgrade(database_url)
    engine = make_engine(database_url)
    sessions = make_session_factory(engine)
    stalls = {"left": 1}

    def respond(_event: dict[str, Any]) -> int | float:
        if stalls["left"]:
            stalls["left"] -= 1
            return 60.0  # the gateway's send is in flight when it dies
        return 200

    receiver = Receiver(respond=respond).start()
    with sessions() as s, s.begin():
        create_endpoint(session=s, tenant="acme", url=receiver.url, events=["output.held"], actor="test")
    address = f"127.0.0.1:{free_ports(1)[0]}"
    proc = start(demo_model_dir, address, database_url)
    try:
        wait_serving(address, proc)
        before = [hold(sessions, n) for n in range(3)]
        wait_for(lambda: receiver.received, 20, "the gateway never sent an event")
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        with Session(engine) as s:
            rows = s.query(WebhookDelivery).all()
            assert len(rows) == 3 and all(r.state == DeliveryState.PENDING for r in rows)
        while_down = [hold(sessions, n) for n in range(3, 5)]
        proc = start(demo_model_dir, address, database_url)
        wait_serving(address, proc)

        def all_delivered() -> bool:
            with Session(engine) as s:
                return all(r.state == DeliveryState.DELIVERED for r in s.query(WebhookDelivery).all())

        wait_for(all_delivered, 60, "events were not delivered after the restart")
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=30)
        receiver.stop()
        engine.dispose()
    tickets = {e["ticket"] for e in receiver.events()}
    assert tickets == set(before + while_down)
