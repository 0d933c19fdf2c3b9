"""A real `modgate serve` with its web queue, for the browser tests: started on free loopback ports,
ready when `/healthz` answers, stopped with SIGTERM and required to exit cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import httpx
from sqlalchemy import select

from gateway.api.v1 import generation_pb2 as gen_pb
from gateway.api.v1 import generation_pb2_grpc as gen_grpc
from gateway.storage.engine import make_engine, make_session_factory
from gateway.storage.models import GenerationOutput
from tests.support.serve_process import free_ports, serve_command


@dataclass
class Gateway:
    grpc_address: str
    web_url: str
    database_url: str
    proc: subprocess.Popen[bytes]
    log: Path
    key: str = ""
    held: dict[str, str] = field(default_factory=dict)  # ticket -> prompt (or what a test keeps there)

    def output(self) -> str:
        """What the server printed so far (a file, not a pipe: a full pipe would block its logging)."""
        return self.log.read_text(errors="replace")


def wait_ready(gw: Gateway, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if gw.proc.poll() is not None:
            raise AssertionError(f"modgate serve exited early:\n{gw.output()}")
        try:
            if httpx.get(gw.web_url + "/healthz", timeout=1).text == "ok":
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"the web queue did not come up in time:\n{gw.output()}")


@contextmanager
def running_gateway(model_dir: Path, tmp: Path, *, config: str | None = None) -> Iterator[Gateway]:
    """`modgate serve` on the model in `model_dir`, a SQLite database and its log in `tmp`, and the
    settings file `config` (TOML text) when given. On leaving: SIGTERM, and a clean exit is asserted."""
    grpc_port, web_port = free_ports(2)
    grpc_address, database_url = f"127.0.0.1:{grpc_port}", f"sqlite:///{tmp / 'modgate.db'}"
    log, config_file = tmp / "serve.log", None
    if config is not None:
        config_file = tmp / "modgate.toml"
        config_file.write_text(config, encoding="utf-8")
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            serve_command(
                model_dir,
                migrate=True,
                grpc_address=grpc_address,
                web_address=f"127.0.0.1:{web_port}",
                metrics_address="",
                database_url=database_url,
                config=config_file,
            ),
            stdout=sink,
            stderr=subprocess.STDOUT,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )
    gw = Gateway(grpc_address, f"http://127.0.0.1:{web_port}", database_url, proc, log)
    try:
        wait_ready(gw)
        yield gw
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
    assert proc.returncode == 0, gw.output()


def result(gw: Gateway, ticket: str) -> gen_pb.Result:
    with grpc.insecure_channel(gw.grpc_address) as channel:
        return gen_grpc.GenerationServiceStub(channel).GetResult(
            gen_pb.GetResultRequest(ticket=ticket), metadata=(("authorization", "Bearer " + gw.key),)
        )


def generated_texts(gw: Gateway) -> dict[str, str]:
    engine = make_engine(gw.database_url)
    try:
        with make_session_factory(engine)() as s:
            rows = s.execute(select(GenerationOutput.ticket, GenerationOutput.generated_text)).all()
            return {t: text for t, text in rows if t}
    finally:
        engine.dispose()
