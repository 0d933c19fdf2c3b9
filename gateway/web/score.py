"""`POST /score`: the request shape of the GPT-Neo card's Azure ML sample, moderated like every gRPC call.

Body: ``{"input_data": {"input_string": ["prompt", ...], "parameters": {"temperature": 0.5, ...}}}``.
Answer: one object per prompt, keyed by sequence index (``[{"0": "text"}]`` for one prompt and one
sequence, as in the card). A sequence the policy did not release is never text: it is
``{"status": "held", "ticket": ...}`` (fetch the reviewed result with GetResult) or
``{"status": "blocked", "ticket": ..., "reasons": [...]}`` (appeal with the ticket).

Same API keys (``Authorization: Bearer``, scope ``generate``), rate limits, pipeline, records and audit
as gRPC; the request id, key and bounded body as every HTTP API front door (`gateway/web/edge.py`). Errors
are JSON with an HTTP status and the field that is wrong.
"""

from __future__ import annotations

import threading
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.errors import GatewayError, InvalidArgument
from gateway.generation.params import PARAMETER_NAMES, SCALAR_PARAMS, RawParams
from gateway.pipeline.callers import Authenticate
from gateway.pipeline.core import GenerationPipeline, Outcome
from gateway.web.edge import caller_for, error_headers, json_value, parse_json, read_body, request_id_for

_PARAMS = "input_data.parameters"


def _error(exc: GatewayError) -> Response:
    body: dict[str, Any] = {"code": exc.grpc_status, "message": str(exc)}
    field = getattr(exc, "field", None)
    if field:
        body["field"] = field
    return JSONResponse({"error": body}, status_code=exc.http_status, headers=error_headers(exc))


def _param(params: dict[str, Any], name: str) -> Any:
    """The value of one parameter, type-checked by its JSON type in `SCALAR_PARAMS` (or a list for stop)."""
    value = params.get(name)
    where = f"{_PARAMS}.{name}"
    if value is None:
        return None
    if name == "stop":
        if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
            raise InvalidArgument(where, "must be a list of strings")
        return tuple(value)
    return json_value(where, value, SCALAR_PARAMS[name])


def parse_body(raw: bytes) -> tuple[list[str], RawParams]:
    """The prompts and parameters of a body, or InvalidArgument naming the field that is wrong."""
    body = parse_json(raw)
    if not isinstance(body, dict) or set(body) - {"input_data"}:
        raise InvalidArgument("body", 'must be an object with one key, "input_data"')
    data = body.get("input_data")
    if not isinstance(data, dict) or set(data) - {"input_string", "parameters"}:
        raise InvalidArgument("input_data", 'must be an object with "input_string" and optional "parameters"')
    prompts = data.get("input_string")
    if isinstance(prompts, str):
        prompts = [prompts]
    if not isinstance(prompts, list) or not all(isinstance(p, str) for p in prompts):
        raise InvalidArgument("input_data.input_string", "must be a list of strings")
    given = data.get("parameters", {})
    if not isinstance(given, dict):
        raise InvalidArgument(_PARAMS, "must be an object")
    unknown = sorted(set(given) - set(PARAMETER_NAMES))
    if unknown:
        raise InvalidArgument(f"{_PARAMS}.{unknown[0]}", "is not a known parameter")
    params = RawParams(**{name: _param(given, name) for name in PARAMETER_NAMES})
    if params.stop is None:
        params = RawParams(**{**params.__dict__, "stop": ()})
    return prompts, params


def _sequence(outcome: Outcome) -> Any:
    """Text only when the policy released it; otherwise what happened, the ticket and (blocked) the
    categories that fired: no score, which is measured on the withheld text (see `convert.py`)."""
    d = outcome.decision
    if d.releasable:
        return d.text
    reasons = [{"category": r.category} for r in d.reasons]
    status = "held" if d.action.name == "HOLD" else "blocked"
    answer: dict[str, Any] = {"status": status, "ticket": outcome.ticket}
    if status == "blocked":
        answer["reasons"] = reasons
    return answer


class ScoreEndpoint:
    """`handle` is the route's endpoint; `authenticate` None means auth is off (`--insecure-no-auth`)."""

    def __init__(self, pipeline: GenerationPipeline, authenticate: Authenticate | None) -> None:
        self._pipeline = pipeline
        self._authenticate = authenticate

    async def handle(self, request: Request) -> Response:
        request_id = request_id_for(request)
        try:
            caller = await caller_for(request, self._authenticate, "generate")
            prompts, raw = parse_body(await read_body(request))
            try:
                params = self._pipeline.prepare(prompts, raw, field="input_data.input_string")
            except InvalidArgument as exc:
                if exc.field in PARAMETER_NAMES or (exc.field or "").startswith("stop["):
                    raise InvalidArgument(f"{_PARAMS}.{exc.field}", str(exc).split(": ", 1)[1]) from None
                raise
            cancel = threading.Event()
            done = await self._pipeline.generate(
                caller,
                request_id,
                prompts,
                params,
                cancel=cancel,
                should_stop=cancel.is_set,
                field="input_data.input_string",
            )
        except GatewayError as exc:
            response = _error(exc)
        else:
            answer: list[dict[str, Any]] = [{} for _ in prompts]
            for outcome in done.outcomes:
                answer[outcome.record.prompt_index][str(outcome.record.sequence.sequence_index)] = _sequence(
                    outcome
                )
            response = JSONResponse(answer)
        response.headers["X-Request-Id"] = request_id
        return response
