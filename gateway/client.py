"""A small synchronous client for the gateway, used by `modgate generate`, the tests and the docs.

It imports neither torch nor transformers, so that a client starts fast.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import grpc

from gateway.api.v1 import generation_pb2 as gen_pb
from gateway.api.v1 import generation_pb2_grpc as gen_grpc
from gateway.api.v1 import moderation_pb2 as mod_pb

PARAMETER_NAMES = (
    "temperature",
    "top_p",
    "top_k",
    "max_new_tokens",
    "do_sample",
    "repetition_penalty",
    "seed",
    "stop",
    "num_return_sequences",
    "min_new_tokens",
)


def sampling_parameters(**params: Any) -> gen_pb.SamplingParameters:
    """Builds the message from keyword arguments; None leaves a field unset (server default)."""
    unknown = set(params) - set(PARAMETER_NAMES)
    if unknown:
        raise TypeError(f"unknown sampling parameter(s): {', '.join(sorted(unknown))}")
    given = {k: v for k, v in params.items() if v is not None}
    stop = given.pop("stop", ())
    return gen_pb.SamplingParameters(stop=list(stop), **given)


def action_name(action: int) -> str:
    """RELEASED, MASKED, HELD or BLOCKED."""
    return mod_pb.ModerationAction.Name(action).removeprefix("MODERATION_ACTION_")


class GatewayClient:
    def __init__(
        self,
        address: str,
        *,
        timeout: float | None = 120.0,
        api_key: str | None = None,
        credentials: grpc.ChannelCredentials | None = None,
    ) -> None:
        self._channel = (
            grpc.secure_channel(address, credentials) if credentials else grpc.insecure_channel(address)
        )
        self._stub = gen_grpc.GenerationServiceStub(self._channel)
        self._timeout = timeout
        self._metadata: tuple[tuple[str, str], ...] = (
            (("authorization", f"Bearer {api_key}"),) if api_key else ()
        )

    def __enter__(self) -> GatewayClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def _call_metadata(self, request_id: str | None) -> tuple[tuple[str, str], ...]:
        return (*self._metadata, ("x-request-id", request_id)) if request_id else self._metadata

    def generate(
        self, prompts: str | Sequence[str], *, request_id: str | None = None, **params: Any
    ) -> gen_pb.GenerateResponse:
        """`request_id` (optional) ties the call to the server's logs and audit trail."""
        if isinstance(prompts, str):
            prompts = [prompts]
        request = gen_pb.GenerateRequest(input_string=list(prompts), parameters=sampling_parameters(**params))
        return self._stub.Generate(request, timeout=self._timeout, metadata=self._call_metadata(request_id))

    def generate_stream(
        self, prompt: str, *, request_id: str | None = None, **params: Any
    ) -> Iterator[gen_pb.GenerateStreamResponse]:
        request = gen_pb.GenerateStreamRequest(input_string=prompt, parameters=sampling_parameters(**params))
        return self._stub.GenerateStream(
            request, timeout=self._timeout, metadata=self._call_metadata(request_id)
        )
