"""What every HTTP API front door (`POST /score`, `/v1/...`) does before the pipeline: the request id,
the API key, a bounded JSON body. One copy, so that the front doors cannot drift apart on what they let
in. API endpoints, not pages: no cookies, so no CSRF."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from gateway.errors import GatewayError, InvalidArgument
from gateway.pipeline.callers import HTTP_KEY_HINT, Authenticate, Caller, bearer_token, resolve_caller
from gateway.pipeline.request_ids import accept_request_id

MAX_BODY_BYTES = 1 << 20  # 16 prompts of 32,000 characters, JSON-escaped, fit with room to spare
# A route's `max_body_size` for these endpoints: they count their own body (`read_body`, the same limit)
# so that a refusal comes in their JSON shape, not as the app-wide limit's plain-text 413.
OWN_BODY_LIMIT = sys.maxsize


class BodyTooLarge(InvalidArgument):
    """413: the body is over `MAX_BODY_BYTES`, whether it said so (Content-Length) or not (chunked)."""

    http_status = 413


def request_id_for(request: Request) -> str:
    """The client's `X-Request-Id` when well-formed, else a new one."""
    return accept_request_id(request.headers.get("x-request-id"))


async def caller_for(request: Request, authenticate: Authenticate | None, scope: str) -> Caller:
    """The caller of `Authorization: Bearer <key>` (see `gateway.pipeline.callers.resolve_caller`)."""
    secret = bearer_token([("authorization", request.headers.get("authorization", ""))])
    return await resolve_caller(authenticate, secret, scope, send=HTTP_KEY_HINT)


async def read_body(request: Request) -> bytes:
    """The body, read no further than `MAX_BODY_BYTES`: a chunked upload with no Content-Length is
    counted as it arrives, not buffered whole first."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise InvalidArgument("body", "Content-Length must be a number of bytes")
        if int(declared) > MAX_BODY_BYTES:
            raise BodyTooLarge("body", f"at most {MAX_BODY_BYTES} bytes, got {declared}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise BodyTooLarge("body", f"at most {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


_JSON_TYPE_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def json_value(where: str, value: Any, kind: type) -> Any:
    """`value` if it has the JSON type `kind` (bool, int, float: an int is a number too, str), else
    InvalidArgument naming `where`. JSON booleans are never numbers, although Python's bool is an int."""
    if kind is bool:
        ok = isinstance(value, bool)
    elif kind is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    else:
        ok = isinstance(value, kind) and not isinstance(value, bool)
    if not ok:
        raise InvalidArgument(where, f"must be {_JSON_TYPE_NAMES[kind]}")
    return value


def error_headers(exc: GatewayError) -> dict[str, str]:
    """What an HTTP refusal says beside its body: how to authenticate (401), when to come back (429)."""
    headers = {"WWW-Authenticate": "Bearer"} if exc.http_status == 401 else {}
    retry = getattr(exc, "retry_after_s", None)
    if retry is not None:
        headers["Retry-After"] = str(max(1, math.ceil(retry)))
    return headers


def parse_json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise InvalidArgument("body", "must be JSON") from None
    except RecursionError:  # arrays or objects nested a thousand deep: no valid body is
        raise InvalidArgument("body", "is nested too deeply") from None


async def read_json(request: Request) -> Any:
    return parse_json(await read_body(request))


class ClosingStreamingResponse(StreamingResponse):
    """A streamed answer that runs `close` however it ends: sent whole, the client gone before the
    first byte or during the body, or the task cancelled. Starlette closes nothing it did not iterate to
    the end, and an async generator left suspended keeps what it holds (a pipeline call's admission:
    its record, its reserved tokens, its place in the batcher) until the garbage collector finalises it."""

    def __init__(
        self,
        content: AsyncIterator[bytes],
        *,
        close: Callable[[], Awaitable[None]],
        headers: Mapping[str, str] | None = None,
        media_type: str | None = None,
    ) -> None:
        super().__init__(content, headers=headers, media_type=media_type)
        self._close = close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._close()
