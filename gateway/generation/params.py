"""Sampling parameters as the generator sees them, validated against the model's limits.

Validation lives here, not in the servicer, so that every entry point (gRPC, HTTP, CLI) refuses the same
inputs with the same field names.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from gateway.errors import InvalidArgument

MAX_SEED = 2**63 - 1


@dataclass(frozen=True)
class Limits:
    """What the server allows, from settings and the loaded model."""

    context_length: int = 2048
    vocab_size: int = 50257
    max_prompts: int = 16
    max_new_tokens: int = 512
    default_max_new_tokens: int = 64
    max_return_sequences: int = 8
    max_stop_sequences: int = 8
    max_stop_length: int = 64
    max_prompt_chars: int = 32_000


@dataclass(frozen=True)
class SamplingParams:
    """Complete, validated parameters: every field has its final value, the seed included."""

    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 50
    max_new_tokens: int = 64
    do_sample: bool = True
    repetition_penalty: float = 1.0
    seed: int = 0
    stop: tuple[str, ...] = field(default_factory=tuple)
    num_return_sequences: int = 1
    min_new_tokens: int = 0


# The sampling parameters, once: each one's name everywhere (the proto field, `RawParams` and
# `SamplingParams`, the `/score` key, the client's keyword, the CLI's `--option`) and its JSON type. `stop`,
# a list of strings, is the one that is not a scalar. The HTTP parser, the gRPC conversion and the CLI are
# derived from it; tests/unit/gateway/test_params.py checks the dataclasses and the proto against it.
SCALAR_PARAMS: dict[str, type] = {
    "temperature": float,
    "top_p": float,
    "top_k": int,
    "max_new_tokens": int,
    "do_sample": bool,
    "repetition_penalty": float,
    "seed": int,
    "num_return_sequences": int,
    "min_new_tokens": int,
}
PARAMETER_NAMES: tuple[str, ...] = (*SCALAR_PARAMS, "stop")


def sampling_params_from_record(parameters: Mapping[str, Any]) -> SamplingParams:
    """The parameters a request was recorded with, back as `SamplingParams` (the recorder stores the
    dataclass as a dict, `stop` as a list); keys that are not fields are ignored. Replay and the
    prompt-run worker both rebuild a recorded call from this."""
    names = {f.name for f in fields(SamplingParams)}
    raw = {k: v for k, v in parameters.items() if k in names}
    raw["stop"] = tuple(raw.get("stop", ()))
    return SamplingParams(**raw)


@dataclass(frozen=True)
class RawParams:
    """Parameters as a client sent them: None means "not set, use the default"."""

    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    max_new_tokens: int | None = None
    do_sample: bool | None = None
    repetition_penalty: float | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()
    num_return_sequences: int | None = None
    min_new_tokens: int | None = None


def _finite(name: str, value: float) -> float:
    if not math.isfinite(value):
        raise InvalidArgument(name, f"must be a finite number, got {value}")
    return value


def _float_in(name: str, value: float | None, default: float, low: float, high: float) -> float:
    """Checks `low < value <= high` (top_p excludes 0 and includes its top)."""
    if value is None:
        return default
    _finite(name, value)
    if not low < value <= high:
        raise InvalidArgument(name, f"must be greater than {low:g} and at most {high:g}, got {value:g}")
    return float(value)


# Logits are divided by the temperature and (the positive ones) by the repetition penalty: a divisor near
# zero turns them into infinities, and the sampling probabilities into NaN. Found by hypothesis:
# repetition_penalty=1.6e-158 answered 500. Below these no sampling is meaningfully different anyway.
MIN_TEMPERATURE = 0.01
MIN_REPETITION_PENALTY = 0.01
FLOAT32_SLACK = 1e-6


def _divisor(name: str, value: float | None, default: float, low: float, high: float) -> float:
    """Checks `low <= value <= high` for a knob that logits are divided by. gRPC carries these as float32,
    so a client's 0.01 arrives as 0.0099999998: the bounds allow for that rounding (1e-6 relative)."""
    if value is None:
        return default
    _finite(name, value)
    if not low * (1 - FLOAT32_SLACK) <= value <= high * (1 + FLOAT32_SLACK):
        raise InvalidArgument(name, f"must be between {low:g} and {high:g}, got {value:g}")
    return float(value)


def _int_in(name: str, value: int | None, default: int, low: int, high: int) -> int:
    if value is None:
        return default
    if not low <= value <= high:
        raise InvalidArgument(name, f"must be between {low} and {high}, got {value}")
    return int(value)


def validate_prompt(prompt: str, limits: Limits, *, field: str) -> None:
    if not prompt.strip():
        raise InvalidArgument(field, "must not be empty")
    if len(prompt) > limits.max_prompt_chars:
        raise InvalidArgument(field, f"at most {limits.max_prompt_chars} characters, got {len(prompt)}")
    if "\x00" in prompt:
        raise InvalidArgument(field, "must not contain NUL characters")


def validate_prompts(prompts: list[str] | tuple[str, ...], limits: Limits, *, field: str) -> None:
    if not prompts:
        raise InvalidArgument(field, "at least one prompt is required")
    if len(prompts) > limits.max_prompts:
        raise InvalidArgument(field, f"at most {limits.max_prompts} prompts per call, got {len(prompts)}")
    for i, prompt in enumerate(prompts):
        validate_prompt(prompt, limits, field=f"{field}[{i}]")


def resolve(raw: RawParams, limits: Limits) -> SamplingParams:
    """Fills defaults and checks every field; raises InvalidArgument naming the first bad one."""
    temperature = _divisor("temperature", raw.temperature, 1.0, MIN_TEMPERATURE, 100.0)
    top_p = _float_in("top_p", raw.top_p, 1.0, 0.0, 1.0)
    top_k = _int_in("top_k", raw.top_k, 50, 0, limits.vocab_size)
    max_new_tokens = _int_in(
        "max_new_tokens", raw.max_new_tokens, limits.default_max_new_tokens, 1, limits.max_new_tokens
    )
    repetition_penalty = _divisor(
        "repetition_penalty", raw.repetition_penalty, 1.0, MIN_REPETITION_PENALTY, 10.0
    )
    n = _int_in("num_return_sequences", raw.num_return_sequences, 1, 1, limits.max_return_sequences)
    min_new_tokens = _int_in("min_new_tokens", raw.min_new_tokens, 0, 0, max_new_tokens)
    if raw.seed is not None and not 0 <= raw.seed <= MAX_SEED:
        raise InvalidArgument("seed", f"must be between 0 and {MAX_SEED}, got {raw.seed}")
    seed = raw.seed if raw.seed is not None else secrets.randbelow(MAX_SEED)
    if len(raw.stop) > limits.max_stop_sequences:
        raise InvalidArgument(
            "stop", f"at most {limits.max_stop_sequences} stop sequences, got {len(raw.stop)}"
        )
    for i, s in enumerate(raw.stop):
        if not s:
            raise InvalidArgument(f"stop[{i}]", "must not be empty")
        if len(s) > limits.max_stop_length:
            raise InvalidArgument(f"stop[{i}]", f"at most {limits.max_stop_length} characters, got {len(s)}")
        if "\x00" in s:  # never in a generated text, and PostgreSQL stores no NUL (the request row)
            raise InvalidArgument(f"stop[{i}]", "must not contain NUL characters")
    return SamplingParams(
        temperature=temperature,
        top_p=top_p,
        top_k=top_k,
        max_new_tokens=max_new_tokens,
        do_sample=True if raw.do_sample is None else raw.do_sample,
        repetition_penalty=repetition_penalty,
        seed=seed,
        stop=tuple(raw.stop),
        num_return_sequences=n,
        min_new_tokens=min_new_tokens,
    )


def check_context(prompt_tokens: int, params: SamplingParams, limits: Limits, *, field: str) -> None:
    """The prompt plus the requested new tokens must fit the model's context window."""
    if prompt_tokens + params.max_new_tokens > limits.context_length:
        raise InvalidArgument(
            field,
            f"prompt is {prompt_tokens} tokens; with max_new_tokens={params.max_new_tokens} it exceeds "
            f"the model's context of {limits.context_length} tokens",
        )
