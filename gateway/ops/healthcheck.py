"""`python -m gateway.ops.healthcheck [HOST:PORT]`: exit 0 when the gateway's gRPC health service answers
SERVING, 1 otherwise, with one line saying why.

For container health checks (the Dockerfile's HEALTHCHECK, deploy/compose.yaml), which need a command
inside the image; Kubernetes asks the same health service with its built-in gRPC probe. It imports only
grpc and the health stubs (no torch, no settings file), so that a check every few seconds costs little.
A replica that is draining has stopped accepting calls: the check is refused (UNAVAILABLE) and fails.
"""

from __future__ import annotations

import os
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

DEFAULT_ADDRESS = "127.0.0.1:50051"
# A listening address that means "every interface" is reached on loopback from inside the container.
_ANY = {"0.0.0.0": "127.0.0.1", "[::]": "[::1]", "::": "[::1]"}


def probe_address(listening: str) -> str:
    """Where to connect to reach a server that listens on `listening` from the same machine."""
    host, sep, port = listening.rpartition(":")
    return f"{_ANY[host]}:{port}" if sep and host in _ANY else listening


def check(address: str, *, timeout: float = 3.0) -> tuple[bool, str]:
    """(serving, what the health service said, or why it could not be asked)."""
    with grpc.insecure_channel(address) as channel:
        try:
            response = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=timeout
            )
        except grpc.RpcError as exc:
            code = exc.code().name if isinstance(exc, grpc.Call) else "UNKNOWN"
            return False, f"{address}: health check failed: {code}"
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    return response.status == health_pb2.HealthCheckResponse.SERVING, f"{address}: {status}"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) > 1 or (args and args[0] in ("-h", "--help")):
        print("usage: python -m gateway.ops.healthcheck [HOST:PORT]  (default: $MODGATE_GRPC_ADDRESS)")
        return 2
    listening = args[0] if args else os.environ.get("MODGATE_GRPC_ADDRESS", DEFAULT_ADDRESS)
    serving, said = check(probe_address(listening))
    print(said)
    return 0 if serving else 1


if __name__ == "__main__":
    sys.exit(main())
