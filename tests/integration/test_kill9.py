"""`kill -9` of the server in the middle of a load, then a restart: no accepted request is lost, none
is left in a state that never resolves, and the audit chain still verifies."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from pathlib import Path

import grpc
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.audit import verify
from gateway.client import GatewayClient
from gateway.storage.engine import make_engine
from gateway.storage.models import GenerationRequest, RequestStatus
from tests.support.serve_process import free_ports, serve_command, spawn_serve, wait_serving

pytestmark = pytest.mark.slow

CLIENTS = 12
# More than the load can finish before the kill: the kill comes once KILL_AFTER calls were answered
# (a fixed sleep let a faster gateway answer every call first, and then nothing was cut off).
CALLS_PER_CLIENT = 40
KILL_AFTER = CLIENTS


def start(demo_model_dir: Path, address: str, database_url: str) -> subprocess.Popen[str]:
    return spawn_serve(
        serve_command(
            demo_model_dir,
            migrate=True,
            insecure_no_auth=True,
            grpc_address=address,
            database_url=database_url,
        ),
        MODGATE_STALE_REQUEST_S="2",
        MODGATE_MAINTENANCE_INTERVAL_S="0.5",
    )


def test_kill_9_under_load_loses_nothing(demo_model_dir: Path, tmp_path: Path) -> None:
    address = f"127.0.0.1:{free_ports(1)[0]}"
    database_url = f"sqlite:///{tmp_path / 'kill9.db'}"
    proc = start(demo_model_dir, address, database_url)
    answered: dict[str, int] = {}  # request id -> number of outputs the client received
    failed: list[str] = []
    lock = threading.Lock()
    killed = threading.Event()

    def client(n: int) -> None:
        with GatewayClient(address, timeout=30) as c:
            for k in range(CALLS_PER_CLIENT):
                if killed.is_set():  # calls after the kill would only wait out the client's retries
                    return
                rid = f"load-{n}-{k}"
                try:
                    response = c.generate(
                        ["The meaning of life is", "The garden"],
                        max_new_tokens=40,
                        seed=n * 100 + k,
                        request_id=rid,
                    )
                    with lock:
                        answered[rid] = len(response.outputs)
                except grpc.RpcError:
                    with lock:
                        failed.append(rid)

    try:
        wait_serving(address, proc)
        threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 120
        while len(answered) < KILL_AFTER and time.monotonic() < deadline:  # let the load run, then kill
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        killed.set()
        proc.communicate(timeout=30)
        for t in threads:
            t.join(60)
        assert answered, "some calls completed before the kill"
        assert failed, "some calls were cut off by the kill"
        proc = start(demo_model_dir, address, database_url)
        wait_serving(address, proc)
        time.sleep(4.0)  # the maintenance sweep marks interrupted requests failed (stale after 2 s)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=30)

    engine = make_engine(database_url)
    with Session(engine) as s:
        rows = {r.request_id: r for r in s.scalars(select(GenerationRequest))}
        for rid, outputs in answered.items():
            assert rid in rows, f"{rid} was answered but has no record"
            assert rows[rid].status == RequestStatus.COMPLETED
            assert len(rows[rid].outputs) == outputs
        stuck = [
            r.request_id
            for r in rows.values()
            if r.status in (RequestStatus.RECEIVED, RequestStatus.GENERATING)
        ]
        assert stuck == [], f"requests left unresolved: {stuck}"
        interrupted = [r for r in rows.values() if r.status == RequestStatus.FAILED]
        assert all(r.request_id in failed for r in interrupted), "only calls the client saw fail are failed"
        assert len(rows) == len(set(rows)), "exactly one record per request id"
        assert verify(session=s).ok
    engine.dispose()
