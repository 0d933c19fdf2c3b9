"""The HTTP edge's streamed answer closes what it streams however it ends, so that a pipeline call's
admission (its record, its reserved tokens), taken before the 200 went out, is never left suspended for
the garbage collector to finalise."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import pytest
from starlette.requests import ClientDisconnect

from gateway.web.edge import ClosingStreamingResponse

SCOPE = {"type": "http", "asgi": {"spec_version": "2.4"}}


async def receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


class Call:
    """A pipeline stream stand-in: admitted once its first event was taken (as the /v1 edge primes it),
    `released` once its `finally` ran (the pipeline's marks the record cancelled and refunds)."""

    def __init__(self) -> None:
        self.released = False

    async def events(self) -> AsyncGenerator[bytes, None]:
        try:
            yield b"started"
            for part in (b"a", b"b", b"c"):
                yield part
        finally:
            self.released = True

    async def response(self) -> ClosingStreamingResponse:
        events = self.events()
        assert await anext(events) == b"started"

        async def body() -> AsyncGenerator[bytes, None]:
            async for part in events:
                yield part

        stream = body()

        async def close() -> None:
            await stream.aclose()
            await events.aclose()

        return ClosingStreamingResponse(stream, close=close, media_type="text/event-stream")


async def test_a_stream_sent_whole_ends_its_call() -> None:
    call = Call()
    response = await call.response()
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await response(SCOPE, receive, send)
    assert b"".join(m.get("body", b"") for m in sent) == b"abc" and call.released


@pytest.mark.parametrize("fails", ["http.response.start", "http.response.body"])
async def test_a_client_gone_before_or_during_the_body_ends_its_call_at_once(fails: str) -> None:
    """Gone before the first byte, the body was never iterated: only an explicit close ends the call."""
    call = Call()
    response = await call.response()

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == fails:
            raise OSError("connection reset")

    with pytest.raises(ClientDisconnect):
        await response(SCOPE, receive, send)
    assert call.released
