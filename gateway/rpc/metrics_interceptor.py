"""Counts and times every gRPC call by method and status code
(the collectors themselves live in `gateway.ops.metrics`)."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from gateway.ops.metrics import GRPC_REQUESTS, GRPC_SECONDS
from gateway.rpc.interceptors import status_for, wrap_handler

log = logging.getLogger(__name__)


class MetricsInterceptor(grpc.aio.ServerInterceptor):
    """Counts every call by method and final status code, and times it."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        method = details.method or "unknown"

        def record(started: float, code: str) -> None:
            GRPC_REQUESTS.labels(method, code).inc()
            GRPC_SECONDS.labels(method).observe(time.perf_counter() - started)

        def code_of(exc: BaseException, context: grpc.aio.ServicerContext) -> str:
            if not isinstance(exc, Exception):  # asyncio.CancelledError: the client went away
                return "CANCELLED"
            if isinstance(exc, grpc.aio.AbortError):
                code = context.code()
                return code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN"
            known = status_for(exc)
            return known.name if known else "INTERNAL"

        def unary(behavior: Any) -> Any:
            async def wrapped(request: Any, context: grpc.aio.ServicerContext) -> Any:
                started = time.perf_counter()
                try:
                    result = await behavior(request, context)
                except BaseException as exc:
                    record(started, code_of(exc, context))
                    raise
                record(started, "OK")
                return result

            return wrapped

        def stream(behavior: Any) -> Any:
            async def wrapped(request: Any, context: grpc.aio.ServicerContext) -> Any:
                started = time.perf_counter()
                try:
                    async for item in behavior(request, context):
                        yield item
                except BaseException as exc:
                    record(started, code_of(exc, context))
                    raise
                record(started, "OK")

            return wrapped

        return wrap_handler(handler, unary, stream)
