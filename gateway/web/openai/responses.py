"""OpenAI response objects from the pipeline's outcomes: what text a choice carries, and nothing else.

A held or blocked output follows Azure OpenAI's precedent: `finish_reason: "content_filter"` and no
text, plus the `modgate` extension object (the action, the categories that fired, the ticket to fetch
the reviewed result with or to appeal with). `usage.completion_tokens` counts released outputs only:
the length of a withheld text is one of the facts it must not give away.
"""

from __future__ import annotations

import json
from typing import Any

from gateway.errors import GatewayError
from gateway.generation.generator import FinishReason
from gateway.pipeline.core import Outcome
from gateway.review.results import ResultView

FINISH = {FinishReason.LENGTH: "length", FinishReason.END_OF_TEXT: "stop", FinishReason.STOP_SEQUENCE: "stop"}
ACTION = {"RELEASE": "released", "MASK": "masked", "HOLD": "held", "BLOCK": "blocked"}
ERROR_TYPE = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}
ERROR_CODE = {401: "invalid_api_key", 404: "not_found", 413: "request_too_large", 429: "rate_limit_exceeded"}


def moderation(outcome: Outcome) -> dict[str, Any]:
    """The `modgate` extension of a choice."""
    d = outcome.decision
    categories = sorted({r.category for r in d.reasons})
    return {"action": ACTION[d.action.name], "categories": categories, "ticket": outcome.ticket}


def finish_reason(outcome: Outcome) -> str:
    if not outcome.decision.releasable:
        return "content_filter"
    return FINISH[outcome.record.sequence.finish_reason]


def released_text(outcome: Outcome) -> str | None:
    return outcome.decision.text if outcome.decision.releasable else None


def usage(outcomes: list[Outcome]) -> dict[str, int]:
    """Prompt tokens once per prompt; completion tokens of released outputs only (see module docstring)."""
    prompts = {o.record.prompt_index: o.record.sequence.prompt_tokens for o in outcomes}
    completion = sum(o.record.sequence.generated_tokens for o in outcomes if o.decision.releasable)
    prompt = sum(prompts.values())
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def choice_index(outcome: Outcome, n: int) -> int:
    """OpenAI numbers the choices of several prompts one after another: prompt i's j-th is i * n + j."""
    return outcome.record.prompt_index * n + outcome.record.sequence.sequence_index


def completion_choice(outcome: Outcome, n: int) -> dict[str, Any]:
    return {
        "index": choice_index(outcome, n),
        "text": released_text(outcome) or "",
        "logprobs": None,
        "finish_reason": finish_reason(outcome),
        "modgate": moderation(outcome),
    }


def chat_choice(outcome: Outcome, n: int) -> dict[str, Any]:
    return {
        "index": choice_index(outcome, n),
        "message": {"role": "assistant", "content": released_text(outcome), "refusal": None},
        "logprobs": None,
        "finish_reason": finish_reason(outcome),
        "modgate": moderation(outcome),
    }


def result(view: ResultView) -> dict[str, Any]:
    """A ticket's result (`GET /v1/modgate/results/{ticket}`, its appeal): text only once released."""
    return {
        "object": "modgate.result",
        "ticket": view.ticket,
        "state": view.state.value,
        "text": view.text,
        "request_id": view.request_id,
        "prompt_index": view.prompt_index,
        "sequence_index": view.sequence_index,
        "decided_at": view.decided_at.isoformat() if view.decided_at else None,
    }


def error_body(exc: GatewayError, param: str | None) -> dict[str, Any]:
    status = exc.http_status
    return {
        "error": {
            "message": str(exc),
            "type": ERROR_TYPE.get(status, "server_error" if status >= 500 else "invalid_request_error"),
            "param": param,
            "code": ERROR_CODE.get(status, exc.grpc_status.lower()),
        }
    }


def sse(data: dict[str, Any] | str) -> bytes:
    """One Server-Sent Event: `data: <json>` and a blank line."""
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return f"data: {payload}\n\n".encode()
