"""The OpenAI-compatible HTTP API on the web port: `/v1/completions`, `/v1/chat/completions`,
`/v1/models`, `/v1/modgate/results/{ticket}` to fetch a held output's reviewed result (GetResult), and
`/v1/modgate/results/{ticket}/appeal` to appeal a blocked one (Appeal).

The same keys (scope `generate`), rate limits, pipeline, records and audit as gRPC and `POST /score`:
this module only translates OpenAI's shapes to the pipeline's and back (`requests`, `responses`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.errors import FailedPrecondition, GatewayError, InvalidArgument, NotFound
from gateway.generation.params import SamplingParams
from gateway.pipeline.callers import Authenticate, Caller
from gateway.pipeline.core import GenerationPipeline, StreamEvent, StreamFinished
from gateway.rpc.services.results import ResultReader
from gateway.web.edge import (
    OWN_BODY_LIMIT,
    ClosingStreamingResponse,
    caller_for,
    error_headers,
    read_body,
    read_json,
    request_id_for,
)
from gateway.web.openai import responses as shape
from gateway.web.openai.chat import ChatTemplate
from gateway.web.openai.requests import (
    OpenAIRequest,
    openai_param,
    parse_appeal,
    parse_chat,
    parse_completion,
)


class _Refused(Exception):
    """A GatewayError with the OpenAI parameter it concerns (None: the request as a whole)."""

    def __init__(self, error: GatewayError, param: str | None) -> None:
        self.error = error
        self.param = param


def prompts_field(chat: bool) -> str:
    return "messages" if chat else "prompt"


def refusal(exc: GatewayError, prompts: str, call: OpenAIRequest) -> _Refused:
    """The error with the OpenAI name of the field it concerns ("max_new_tokens" -> "max_tokens", or
    the synonym `call` sent, "max_completion_tokens")."""
    if not isinstance(exc, InvalidArgument) or exc.field is None:
        return _Refused(exc, None)
    param = openai_param(exc.field, prompts, call.sent_as)
    if param == exc.field:
        return _Refused(exc, param)
    return _Refused(type(exc)(param or "", str(exc).split(": ", 1)[1]), param)


def ticket_param(exc: GatewayError) -> str | None:
    """The parameter a result call's refusal concerns: the field named, or the ticket it could not use."""
    if isinstance(exc, InvalidArgument):
        return exc.field
    return "ticket" if isinstance(exc, NotFound | FailedPrecondition) else None


def error_response(exc: GatewayError, param: str | None, request_id: str) -> JSONResponse:
    headers = {"X-Request-Id": request_id, **error_headers(exc)}
    return JSONResponse(shape.error_body(exc, param), status_code=exc.http_status, headers=headers)


class OpenAIEndpoints:
    def __init__(
        self,
        pipeline: GenerationPipeline,
        authenticate: Authenticate | None,
        results: ResultReader,
        *,
        served_model: str,
        chat_template: ChatTemplate,
    ) -> None:
        self._pipeline = pipeline
        self._authenticate = authenticate
        self._results = results
        self._model = served_model
        self._chat = chat_template
        self._created = int(time.time())

    def routes(self) -> list[Route]:
        return [
            Route("/v1/completions", self.completions, methods=["POST"], max_body_size=OWN_BODY_LIMIT),
            Route(
                "/v1/chat/completions", self.chat_completions, methods=["POST"], max_body_size=OWN_BODY_LIMIT
            ),
            Route("/v1/models", self.models, methods=["GET"]),
            Route("/v1/models/{model:path}", self.model, methods=["GET"]),
            Route("/v1/modgate/results/{ticket}", self.result, methods=["GET"]),
            Route(
                "/v1/modgate/results/{ticket}/appeal",
                self.appeal,
                methods=["POST"],
                max_body_size=OWN_BODY_LIMIT,
            ),
        ]

    # Models, and a ticket's result (GET) and appeal (POST)

    def _model_object(self) -> dict[str, Any]:
        return {"id": self._model, "object": "model", "created": self._created, "owned_by": "modgate"}

    async def models(self, request: Request) -> Response:
        request_id = request_id_for(request)
        try:
            await caller_for(request, self._authenticate, "generate")
        except GatewayError as exc:
            return error_response(exc, None, request_id)
        return JSONResponse({"object": "list", "data": [self._model_object()]})

    async def model(self, request: Request) -> Response:
        request_id = request_id_for(request)
        try:
            await caller_for(request, self._authenticate, "generate")
            if request.path_params["model"] != self._model:
                raise NotFound(f"the model {request.path_params['model']!r} does not exist")
        except GatewayError as exc:
            return error_response(exc, "model", request_id)
        return JSONResponse(self._model_object())

    async def result(self, request: Request) -> Response:
        """GetResult over HTTP (`ResultReader.get`): the same tenant rules (another tenant's ticket is
        404), the same request from the key's requests-per-minute bucket (429 when empty), the same audit."""
        request_id = request_id_for(request)
        try:
            caller = await caller_for(request, self._authenticate, "generate")
            view = await self._results.get(request.path_params["ticket"], caller)
        except GatewayError as exc:
            return error_response(exc, ticket_param(exc), request_id)
        return JSONResponse(shape.result(view), headers={"X-Request-Id": request_id})

    async def appeal(self, request: Request) -> Response:
        """Appeal over HTTP (`ResultReader.appeal`): a blocked output's ticket enters the review queue, by
        gRPC's rules (its tenant only, one request from the key's bucket, blocked and not yet queued)."""
        request_id = request_id_for(request)
        try:
            caller = await caller_for(request, self._authenticate, "generate")
            reason = parse_appeal(await read_body(request))
            view = await self._results.appeal(request.path_params["ticket"], reason, caller)
        except GatewayError as exc:
            return error_response(exc, ticket_param(exc), request_id)
        return JSONResponse(shape.result(view), headers={"X-Request-Id": request_id})

    # Completions (POST)

    async def completions(self, request: Request) -> Response:
        return await self._complete(request, chat=False)

    async def chat_completions(self, request: Request) -> Response:
        return await self._complete(request, chat=True)

    async def _admit(self, request: Request, *, chat: bool) -> tuple[Caller, OpenAIRequest, SamplingParams]:
        field = prompts_field(chat)
        try:
            caller = await caller_for(request, self._authenticate, "generate")
        except GatewayError as exc:
            raise _Refused(exc, None) from None
        try:
            body = await read_json(request)
            call = parse_chat(body, self._chat) if chat else parse_completion(body)
            if call.model != self._model:
                unknown = f"the model {call.model!r} does not exist: this gateway serves {self._model!r}"
                raise _Refused(NotFound(unknown), "model")
            if call.stream and len(call.prompts) != 1:
                raise InvalidArgument("prompt", "a stream carries one prompt; send a list without stream")
        except GatewayError as exc:  # named as the client sent it: nothing to rename
            raise _Refused(exc, getattr(exc, "field", None)) from None
        try:
            params = self._pipeline.prepare(call.prompts, call.raw, field=field, stream=call.stream)
        except GatewayError as exc:  # named as the pipeline names it: renamed to OpenAI's
            raise refusal(exc, field, call) from None
        return caller, call, params

    async def _complete(self, request: Request, *, chat: bool) -> Response:
        request_id = request_id_for(request)
        try:
            caller, call, params = await self._admit(request, chat=chat)
        except _Refused as refused:
            return error_response(refused.error, refused.param, request_id)
        kind = "chat.completion" if chat else "text_completion"
        ident = f"{'chatcmpl' if chat else 'cmpl'}-{request_id}"
        if call.stream:
            return await self._stream(caller, request_id, call, params, chat=chat, ident=ident)
        cancel = threading.Event()
        try:
            done = await self._pipeline.generate(
                caller,
                request_id,
                call.prompts,
                params,
                cancel=cancel,
                should_stop=cancel.is_set,
                field=prompts_field(chat),
                tags=call.tags,
            )
        except GatewayError as exc:
            failed = refusal(exc, prompts_field(chat), call)
            return error_response(failed.error, failed.param, request_id)
        n = params.num_return_sequences
        choice = shape.chat_choice if chat else shape.completion_choice
        body = {
            "id": ident,
            "object": kind,
            "created": int(time.time()),
            "model": self._model,
            "system_fingerprint": None,
            "choices": sorted((choice(o, n) for o in done.outcomes), key=lambda c: c["index"]),
            "usage": shape.usage(done.outcomes),
        }
        return JSONResponse(body, headers={"X-Request-Id": request_id})

    async def _stream(
        self,
        caller: Caller,
        request_id: str,
        call: OpenAIRequest,
        params: SamplingParams,
        *,
        chat: bool,
        ident: str,
    ) -> Response:
        """The call is admitted (key policy, rate limit, prompt length, record) before the 200 goes out:
        its first event, StreamStarted, comes after all of that, so a refusal is the same HTTP error as
        for a plain call (429 with `Retry-After`, 400 naming `prompt` / `messages`). The response closes
        the pipeline's generator however the stream ends (`ClosingStreamingResponse`)."""
        field = prompts_field(chat)
        cancel = threading.Event()
        events = self._pipeline.stream(
            caller,
            request_id,
            call.prompts[0],
            params,
            cancel=cancel,
            should_stop=cancel.is_set,
            field=field,
            tags=call.tags,
        )
        try:
            await anext(events)  # StreamStarted: the call is admitted and recorded
        except GatewayError as exc:  # the generator has ended: nothing was recorded or is left to close
            failed = refusal(exc, field, call)
            return error_response(failed.error, failed.param, request_id)
        body = self._sse(events, call, chat=chat, ident=ident)

        async def close() -> None:
            cancel.set()  # the client went away or the stream ended: no more generation for it
            await body.aclose()
            await events.aclose()  # not started, or abandoned mid-way: the call is marked cancelled

        return ClosingStreamingResponse(
            body,
            close=close,
            media_type="text/event-stream",
            headers={"X-Request-Id": request_id, "Cache-Control": "no-cache"},
        )

    async def _sse(
        self, events: AsyncIterator[StreamEvent], call: OpenAIRequest, *, chat: bool, ident: str
    ) -> AsyncGenerator[bytes, None]:
        """SSE chunks of released text only, after StreamStarted; the last names the outcome. An error
        after the first byte cannot change the HTTP status: it is sent as an `error` event, then the
        stream ends."""
        created = int(time.time())
        kind = "chat.completion.chunk" if chat else "text_completion"

        def chunk(choice: dict[str, Any] | None, **extra: Any) -> bytes:
            body: dict[str, Any] = {"id": ident, "object": kind, "created": created, "model": self._model}
            body["choices"] = [] if choice is None else [choice]
            return shape.sse({**body, **extra})

        def text_choice(text: str, finish: str | None = None, **extra: Any) -> dict[str, Any]:
            if chat:
                delta = {"content": text} if text else {}
                return {"index": 0, "delta": delta, "finish_reason": finish, **extra}
            return {"index": 0, "text": text, "logprobs": None, "finish_reason": finish, **extra}

        if chat:
            yield chunk({"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None})
        try:
            async for event in events:
                if isinstance(event, StreamFinished):
                    outcome = event.outcome
                    final = text_choice("", shape.finish_reason(outcome), modgate=shape.moderation(outcome))
                    yield chunk(final)
                    if call.include_usage:
                        yield chunk(None, usage=shape.usage([outcome]))
                elif isinstance(event, str) and event:
                    yield chunk(text_choice(event))
        except GatewayError as exc:
            yield shape.sse(shape.error_body(exc, None))
        yield shape.sse("[DONE]")
