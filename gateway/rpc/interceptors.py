"""Server interceptors, one concern each: request ids, then domain errors -> gRPC status codes.

Only unexpected exceptions become INTERNAL, and their details name the request id, never internals or
generated text: the traceback goes to the server log.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.any_pb2 import Any as AnyProto
from google.protobuf.duration_pb2 import Duration
from google.rpc import status_pb2
from google.rpc.error_details_pb2 import RetryInfo
from grpc_status import rpc_status

from gateway import errors
from gateway.pipeline.request_ids import accept_request_id, request_id_var

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "x-request-id"

Behavior = Callable[[Any, grpc.aio.ServicerContext], Any]


def retry_status(code: grpc.StatusCode, message: str, retry_after_s: float) -> grpc.Status:
    """A status whose details carry google.rpc.RetryInfo, so that clients know when to come back."""
    delay = Duration()
    delay.FromNanoseconds(int(retry_after_s * 1e9))
    detail = AnyProto()
    detail.Pack(RetryInfo(retry_delay=delay))
    return rpc_status.to_status(status_pb2.Status(code=code.value[0], message=message, details=[detail]))


def status_for(exc: BaseException) -> grpc.StatusCode | None:
    """The status a domain error asks for (its `grpc_status`), or None for anything unexpected."""
    if isinstance(exc, errors.GatewayError):
        return grpc.StatusCode[exc.grpc_status]
    return None


def as_message_stream(behavior: Behavior) -> Behavior:
    """A server-streaming behaviour as an async generator, which is what the interceptors' stream
    wrappers iterate. grpc.aio also accepts a coroutine that sends its messages with `context.write()`
    and returns None (the health service's `Watch` is one); iterating that coroutine failed with
    INTERNAL. Adapted, it runs inside a generator that yields nothing: its messages still go out through
    `context.write()`, and its errors and its end reach the wrappers as a generator's would."""
    if not inspect.iscoroutinefunction(behavior):
        return behavior

    async def messages(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        await behavior(request, context)
        return
        yield  # pragma: no cover - makes this an async generator

    return messages


def wrap_handler(
    handler: grpc.RpcMethodHandler,
    unary: Callable[[Behavior], Behavior],
    stream: Callable[[Behavior], Behavior],
) -> grpc.RpcMethodHandler:
    """Rebuilds a handler with its behaviour wrapped; client-streaming methods are not used here."""
    if handler is None:
        return handler
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(
            unary(handler.unary_unary),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(
            stream(as_message_stream(handler.unary_stream)),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    return handler


Prelude = Callable[[grpc.aio.ServicerContext], Awaitable[None]]


def with_prelude(handler: grpc.RpcMethodHandler, prelude: Prelude) -> grpc.RpcMethodHandler:
    """Runs `prelude(context)` before the method, for unary and server-streaming methods alike (it may
    set context variables for the call, send metadata, or abort)."""

    def unary(behavior: Behavior) -> Behavior:
        async def wrapped(request: Any, context: grpc.aio.ServicerContext) -> Any:
            await prelude(context)
            return await behavior(request, context)

        return wrapped

    def stream(behavior: Behavior) -> Behavior:
        async def wrapped(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            await prelude(context)
            async for item in behavior(request, context):
                yield item

        return wrapped

    return wrap_handler(handler, unary, stream)


class RequestIdInterceptor(grpc.aio.ServerInterceptor):
    """Takes the client's `x-request-id` (when well-formed) or makes one, and returns it in metadata.

    The header goes out with the response (unary) or the first message (streams), never at the start:
    behind an L7 balancer, a replica that dies after sending headers leaves the balancer nothing to do
    but reset the stream, which the client sees as INTERNAL; before headers, the balancer answers 502,
    which the client sees as UNAVAILABLE and retries (tests/deploy/, kill -9 behind nginx). The id is
    also in the trailing metadata, so that a refused call carries it (and a stream that sends with
    `context.write()`, the health service's Watch, carries it only there).
    """

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        given = dict(details.invocation_metadata or ()).get(REQUEST_ID_HEADER)
        if isinstance(given, bytes):
            given = None

        def start(context: grpc.aio.ServicerContext) -> tuple[tuple[str, str]]:
            rid = accept_request_id(given)
            request_id_var.set(rid)
            header = ((REQUEST_ID_HEADER, rid),)
            context.set_trailing_metadata(header)
            return header

        def unary(behavior: Behavior) -> Behavior:
            async def wrapped(request: Any, context: grpc.aio.ServicerContext) -> Any:
                header = start(context)
                response = await behavior(request, context)
                await context.send_initial_metadata(header)
                return response

            return wrapped

        def stream(behavior: Behavior) -> Behavior:
            async def wrapped(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                header: tuple[tuple[str, str]] | None = start(context)
                async for item in behavior(request, context):
                    if header is not None:
                        await context.send_initial_metadata(header)
                        header = None
                    yield item

            return wrapped

        return wrap_handler(handler, unary, stream)


class ErrorInterceptor(grpc.aio.ServerInterceptor):
    """Maps domain errors to precise status codes; anything else to INTERNAL with the request id."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        method = details.method

        async def fail(context: grpc.aio.ServicerContext, exc: Exception) -> None:
            code = status_for(exc)
            if code is None:
                log.exception("unexpected error in %s (request %s)", method, request_id_var.get())
                await context.abort(
                    grpc.StatusCode.INTERNAL, f"internal error; request id {request_id_var.get()}"
                )
                return  # abort raises; the return keeps the type checker (and a reader) on track
            log.info("%s refused: %s %s", method, code.name, exc)
            retry_after = getattr(exc, "retry_after_s", None)
            if retry_after is not None:
                await context.abort_with_status(retry_status(code, str(exc), retry_after))
            await context.abort(code, str(exc))

        def unary(behavior: Behavior) -> Behavior:
            async def wrapped(request: Any, context: grpc.aio.ServicerContext) -> Any:
                try:
                    return await behavior(request, context)
                except Exception as exc:
                    if isinstance(exc, grpc.aio.AbortError):
                        raise
                    await fail(context, exc)

            return wrapped

        def stream(behavior: Behavior) -> Behavior:
            async def wrapped(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                try:
                    async for item in behavior(request, context):
                        yield item
                except Exception as exc:
                    if isinstance(exc, grpc.aio.AbortError):
                        raise
                    await fail(context, exc)

            return wrapped

        return wrap_handler(handler, unary, stream)
