"""Python clients for the gateway's gRPC API: `GatewayClient` (blocking) and `AsyncGatewayClient`
(asyncio), with the same methods. docs/api.md has examples."""

from gateway.client.aio import AsyncGatewayClient, AsyncStream
from gateway.client.params import PARAMETER_NAMES, Sampling, action_name, sampling_parameters
from gateway.client.retry import NO_RETRY, RetryPolicy
from gateway.client.sync import GatewayClient, Stream

__all__ = [
    "NO_RETRY",
    "PARAMETER_NAMES",
    "AsyncGatewayClient",
    "AsyncStream",
    "GatewayClient",
    "RetryPolicy",
    "Sampling",
    "Stream",
    "action_name",
    "sampling_parameters",
]
