"""`python -m gateway.ops.healthcheck`, the container health check, against a real gateway."""

from __future__ import annotations

import os
import subprocess
import sys

from gateway.ops.healthcheck import probe_address
from tests.integration.gateway_harness import ServerThread
from tests.support.serve_process import free_ports


def _healthcheck(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.ops.healthcheck", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def test_serving_gateway_passes_including_an_any_interface_address(gateway: ServerThread) -> None:
    port = gateway.address.rpartition(":")[2]
    for result in (
        _healthcheck(gateway.address),
        _healthcheck(env={"MODGATE_GRPC_ADDRESS": f"0.0.0.0:{port}"}),  # as the image sets it
    ):
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.strip() == f"127.0.0.1:{port}: SERVING"


def test_no_server_fails_with_one_line() -> None:
    (port,) = free_ports(1)
    result = _healthcheck(f"127.0.0.1:{port}")
    assert result.returncode == 1
    assert result.stdout.strip() == f"127.0.0.1:{port}: health check failed: UNAVAILABLE"
    assert "Traceback" not in result.stderr


def test_usage_and_addresses() -> None:
    assert _healthcheck("a", "b").returncode == 2
    assert probe_address("0.0.0.0:50051") == "127.0.0.1:50051"
    assert probe_address("[::]:50051") == "[::1]:50051"
    assert probe_address("10.0.0.5:50051") == "10.0.0.5:50051"
