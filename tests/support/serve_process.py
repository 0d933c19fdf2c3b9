"""Helpers for tests that run the real `modgate serve` as a subprocess (CLI, kill -9, browser tests)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

__all__ = ["MODGATE", "free_ports", "serve_command", "spawn_serve", "wait_serving"]

# The console script of the venv the tests run in (not whatever `modgate` is first on PATH).
MODGATE = str(Path(sys.executable).with_name("modgate"))


def serve_command(
    model: str | Path,
    *,
    grpc_address: str | None = None,
    database_url: str | None = None,
    config: str | Path | None = None,
    web_address: str | None = None,
    no_web: bool = False,
    metrics_address: str | None = None,
    offline_moderation: bool = True,
    migrate: bool = False,
    insecure_no_auth: bool = False,
    modgate: str | Path = MODGATE,
) -> list[str]:
    """The `modgate serve` argv, built in one place so that a renamed option is changed once.

    An option left at None is not passed (the server's default or `config` decides); `metrics_address=""`
    turns the metrics listener off. `modgate` is the console script to run (another venv's for the wheel
    test)."""
    argv = [str(modgate), "serve", "--model", str(model)]
    flags = {
        "--offline-moderation": offline_moderation,
        "--migrate": migrate,
        "--insecure-no-auth": insecure_no_auth,
        "--no-web": no_web,
    }
    argv += [flag for flag, on in flags.items() if on]
    options = {
        "--config": config,
        "--grpc-address": grpc_address,
        "--web-address": web_address,
        "--metrics-address": metrics_address,
        "--database-url": database_url,
    }
    argv += [part for option, value in options.items() if value is not None for part in (option, str(value))]
    return argv


def spawn_serve(argv: list[str], **env: str) -> subprocess.Popen[str]:
    """Start `argv` (from `serve_command`) offline, with `env` on top of the test run's environment;
    stdout and stderr come back through one text pipe, so a failure shows what the server printed."""
    return subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", **env},
    )


def free_ports(n: int) -> list[int]:
    """`n` distinct free loopback ports (all bound at once, so the kernel cannot hand out one twice)."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


def wait_serving(
    address: str,
    proc: subprocess.Popen[str] | subprocess.Popen[bytes],
    *,
    output: Callable[[], str] | None = None,
    timeout: float = 90,
) -> None:
    """Until the gRPC health check says SERVING; fails at once with the server's output if it exited.
    `output` reads what the server printed (default: its stdout pipe, once it has exited)."""

    def printed() -> str:
        if output is not None:
            return output()
        data = proc.stdout.read() if proc.stdout else ""
        return data.decode(errors="replace") if isinstance(data, bytes) else data

    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(f"modgate serve exited early:\n{printed()}")
            try:
                status = stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status
                if status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.3)
    raise AssertionError("modgate serve did not become healthy in time")
