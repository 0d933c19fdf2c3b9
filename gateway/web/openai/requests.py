"""OpenAI request bodies -> prompts and `RawParams`: what the pipeline takes from every front door.

Every documented parameter is either honoured or refused by name: a value other than the default for
one modgate cannot honour (logprobs, echo, penalties, tools, ...) is a 400 naming it, and so is a name
OpenAI does not have. Nothing is silently ignored. Ranges are not checked here: `GenerationPipeline.
prepare` checks them for every front door, and `openai_param` renames its field names back (its
errors only: a parse error here names the field as the client sent it).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from gateway.errors import InvalidArgument
from gateway.generation.params import RawParams
from gateway.pipeline.recording import ClientTags
from gateway.web.edge import json_value, parse_json
from gateway.web.openai.chat import ChatTemplate

# OpenAI's name -> RawParams' name, for what the two share.
RENAMED = {"max_tokens": "max_new_tokens", "n": "num_return_sequences", "min_tokens": "min_new_tokens"}
CHAT_RENAMED = {**RENAMED, "max_completion_tokens": "max_new_tokens"}
_BACK = {raw: name for name, raw in RENAMED.items()}
MAX_STOP = 4  # OpenAI's own limit on `stop`

# Accepted at these values only (OpenAI's defaults, or what they mean for a plain text completion).
_COMMON_DEFAULTS: dict[str, tuple[Any, ...]] = {
    "presence_penalty": (None, 0, 0.0),
    "frequency_penalty": (None, 0, 0.0),
    "logit_bias": (None, {}),
}
# `logprobs`: null only. OpenAI's legacy API answers `logprobs: 0` with the sampled tokens' logprobs.
COMPLETION_DEFAULTS = {**_COMMON_DEFAULTS, "echo": (None, False), "logprobs": (None,), "suffix": (None, "")}
CHAT_DEFAULTS = {
    **_COMMON_DEFAULTS,
    "logprobs": (None, False),
    "top_logprobs": (None, 0),
    "response_format": (None, {"type": "text"}),
    "tools": (None, []),
    "tool_choice": (None, "none"),
    "functions": (None, []),
    "function_call": (None, "none"),
    "parallel_tool_calls": (None,),
    "modalities": (None, ["text"]),
    "store": (None, False),
    "service_tier": (None, "auto", "default"),
}
_SHARED = {"model", "temperature", "top_p", "n", "stop", "seed", "stream", "stream_options", "user"}
_SHARED |= {"max_tokens"}
_EXTENSIONS = {"top_k", "repetition_penalty", "min_tokens"}
COMPLETION_KEYS = _SHARED | _EXTENSIONS | {"prompt", "best_of"} | set(COMPLETION_DEFAULTS)
CHAT_KEYS = _SHARED | _EXTENSIONS | {"messages", "max_completion_tokens", "metadata"} | set(CHAT_DEFAULTS)


@dataclass(frozen=True)
class OpenAIRequest:
    model: str
    prompts: list[str]
    raw: RawParams
    stream: bool
    include_usage: bool
    tags: ClientTags
    # the name the client gave each renamed parameter (max_new_tokens -> max_completion_tokens), so that
    # a refusal names what was sent
    sent_as: Mapping[str, str] = dataclasses.field(default_factory=dict)


def _typed(body: Mapping[str, Any], name: str, kind: type) -> Any:
    """The value of `name` (None when absent), of the JSON type `kind` (`edge.json_value`)."""
    value = body.get(name)
    return None if value is None else json_value(name, value, kind)


def _number(body: Mapping[str, Any], name: str) -> float | None:
    return _typed(body, name, float)


def _integer(body: Mapping[str, Any], name: str) -> int | None:
    return _typed(body, name, int)


def _string(body: Mapping[str, Any], name: str) -> str | None:
    return _typed(body, name, str)


MAX_USER_CHARS = 256


def _user(body: Mapping[str, Any]) -> str | None:
    """OpenAI's `user`: an id for the person behind the call, recorded with the request."""
    user = _string(body, "user")
    if user is not None and (len(user) > MAX_USER_CHARS or not user.isprintable()):
        raise InvalidArgument("user", f"must be at most {MAX_USER_CHARS} printable characters")
    return user


MAX_METADATA_PAIRS, MAX_METADATA_KEY_CHARS, MAX_METADATA_VALUE_CHARS = 16, 64, 512  # OpenAI's bounds


def _metadata(body: Mapping[str, Any]) -> dict[str, str] | None:
    """Chat's `metadata`: the client's string pairs about the call (a conversation id, a team),
    recorded with the request like `user`. OpenAI's bounds; printable text only, like `user`."""
    metadata = body.get("metadata")
    if metadata is None:
        return None
    if not isinstance(metadata, dict) or len(metadata) > MAX_METADATA_PAIRS:
        raise InvalidArgument("metadata", f"must be an object of at most {MAX_METADATA_PAIRS} pairs")
    for key, value in metadata.items():
        if not (0 < len(key) <= MAX_METADATA_KEY_CHARS and key.isprintable()):
            raise InvalidArgument(
                "metadata", f"keys must be 1 to {MAX_METADATA_KEY_CHARS} printable characters"
            )
        if not (isinstance(value, str) and len(value) <= MAX_METADATA_VALUE_CHARS and value.isprintable()):
            raise InvalidArgument(
                "metadata",
                f"values must be strings of at most {MAX_METADATA_VALUE_CHARS} printable characters",
            )
    return metadata


def _flag(body: Mapping[str, Any], name: str) -> bool:
    return bool(_typed(body, name, bool))


def _stop(body: Mapping[str, Any]) -> tuple[str, ...]:
    value = body.get("stop")
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise InvalidArgument("stop", "must be a string or a list of strings")
    if len(value) > MAX_STOP:
        raise InvalidArgument("stop", f"at most {MAX_STOP} sequences, got {len(value)}")
    return tuple(value)


def _include_usage(body: Mapping[str, Any], stream: bool) -> bool:
    options = body.get("stream_options")
    if options is None:
        return False
    if not stream:
        raise InvalidArgument("stream_options", "is only allowed when stream is true")
    if not isinstance(options, dict) or set(options) - {"include_usage"}:
        raise InvalidArgument("stream_options", 'must be an object with "include_usage" only')
    return _flag(options, "include_usage")


def check_keys(body: Any, allowed: set[str], defaults: Mapping[str, tuple[Any, ...]]) -> dict[str, Any]:
    """The body as a dict, or a 400 naming the first unknown argument or unsupported value."""
    if not isinstance(body, dict):
        raise InvalidArgument("body", "must be a JSON object")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise InvalidArgument(unknown[0], "unrecognized request argument")
    for name, accepted in defaults.items():
        if name in body and not any(_same_json(body[name], value) for value in accepted):
            raise InvalidArgument(name, "is not supported by this gateway (only its default is accepted)")
    return body


def _same_json(given: Any, accepted: Any) -> bool:
    """Equal and of the same JSON type: Python's `0 == False`, but JSON's 0 is not false."""
    return type(given) is type(accepted) and bool(given == accepted)


def _sampling(body: Mapping[str, Any], renamed: Mapping[str, str]) -> tuple[RawParams, dict[str, str]]:
    temperature = _number(body, "temperature")
    given: dict[str, Any] = {
        "top_p": _number(body, "top_p"),
        "top_k": _integer(body, "top_k"),
        "repetition_penalty": _number(body, "repetition_penalty"),
        "seed": _integer(body, "seed"),
        "stop": _stop(body),
    }
    sent_as: dict[str, str] = {}
    for name, raw_name in renamed.items():
        value = _integer(body, name)
        if value is not None:
            if given.get(raw_name) is not None:
                synonyms = ", ".join(k for k, v in renamed.items() if v == raw_name)
                raise InvalidArgument(name, f"give only one of {synonyms}")
            given[raw_name] = value
            sent_as[raw_name] = name
    if temperature == 0:  # OpenAI's "deterministic": greedy decoding
        given["do_sample"] = False
    else:
        given["temperature"] = temperature
    return RawParams(**given), sent_as


def _common(body: dict[str, Any], prompts: list[str], renamed: Mapping[str, str]) -> OpenAIRequest:
    model = _string(body, "model")
    if not model:
        raise InvalidArgument("model", "is required")
    stream = _flag(body, "stream")
    raw, sent_as = _sampling(body, renamed)
    return OpenAIRequest(
        model=model,
        prompts=prompts,
        raw=raw,
        stream=stream,
        include_usage=_include_usage(body, stream),
        tags=ClientTags(user=_user(body), metadata=_metadata(body)),
        sent_as=sent_as,
    )


def parse_completion(body: Any) -> OpenAIRequest:
    """`POST /v1/completions`."""
    body = check_keys(body, COMPLETION_KEYS, COMPLETION_DEFAULTS)
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        prompts = [prompt]
    elif isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        prompts = list(prompt)
    elif isinstance(prompt, list) and prompt and all(isinstance(p, int | list) for p in prompt):
        raise InvalidArgument("prompt", "token arrays are not supported: send text")
    else:
        raise InvalidArgument("prompt", "must be a string or a non-empty list of strings")
    best_of = _integer(body, "best_of")
    if best_of is not None and best_of != (body.get("n") or 1):
        raise InvalidArgument("best_of", "is not supported unless equal to n")
    return _common(body, prompts, RENAMED)


def parse_chat(body: Any, template: ChatTemplate) -> OpenAIRequest:
    """`POST /v1/chat/completions`: the messages become one prompt through the gateway's template."""
    body = check_keys(body, CHAT_KEYS, CHAT_DEFAULTS)
    call = _common(body, [template.render(body.get("messages"))], CHAT_RENAMED)
    stop = call.raw.stop + tuple(s for s in template.stop if s not in call.raw.stop)
    return dataclasses.replace(call, raw=dataclasses.replace(call.raw, stop=stop))


def parse_appeal(raw: bytes) -> str:
    """`POST /v1/modgate/results/{ticket}/appeal`: `{"reason": "..."}`, or no body (no reason). The
    reason's length and characters are checked where gRPC's Appeal checks them (`ResultReader.appeal`)."""
    if not raw.strip():
        return ""
    body = check_keys(parse_json(raw), {"reason"}, {})
    return _string(body, "reason") or ""


def openai_param(
    field: str | None, prompts_field: str, sent_as: Mapping[str, str] | None = None
) -> str | None:
    """The OpenAI name of a field the pipeline named: its prompts (`input_string`, `input_string[i]`),
    `parameters.x` and its own parameter names ("max_new_tokens" -> "max_tokens", or the synonym the
    client sent: `sent_as`). For the pipeline's errors only: a parse error already names the field as
    the client sent it (`prompt_cache_key`)."""
    if field is None:
        return None
    head, bracket, rest = field.partition("[")
    if head == "input_string":
        return prompts_field + bracket + rest
    head = head.removeprefix("parameters.")
    return ((sent_as or {}).get(head) or _BACK.get(head, head)) + bracket + rest


ParseBody = Callable[[Any], OpenAIRequest]
