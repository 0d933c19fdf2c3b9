"""Helpers for tests that run the real `modgate serve` as a subprocess (CLI, kill -9, browser tests)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

__all__ = ["MODGATE", "free_ports", "wait_serving"]

# The console script of the venv the tests run in (not whatever `modgate` is first on PATH).
MODGATE = str(Path(sys.executable).with_name("modgate"))


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
