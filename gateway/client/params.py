"""Sampling parameters as typed keyword arguments, and the small helpers every client shares."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, TypedDict, get_type_hints

from gateway.api.v1 import generation_pb2 as gen_pb
from gateway.api.v1 import moderation_pb2 as mod_pb


class Sampling(TypedDict, total=False):
    """The sampling parameters of Generate and GenerateStream; a missing or None one takes the server's
    default. The server validates ranges (INVALID_ARGUMENT names the field); docs/api.md lists them."""

    temperature: float | None
    top_p: float | None
    top_k: int | None
    max_new_tokens: int | None
    min_new_tokens: int | None
    do_sample: bool | None
    repetition_penalty: float | None
    seed: int | None
    stop: Sequence[str] | None
    num_return_sequences: int | None


PARAMETER_NAMES: tuple[str, ...] = tuple(get_type_hints(Sampling))


def sampling_parameters(**params: object) -> gen_pb.SamplingParameters:
    """The message for keyword arguments (a `Sampling`); None leaves a field unset (server default).

    Untyped on purpose: also the entry for callers holding a plain dict (the CLI's options); an unknown
    name is a TypeError here rather than a silently ignored field.
    """
    unknown = set(params) - set(PARAMETER_NAMES)
    if unknown:
        raise TypeError(f"unknown sampling parameter(s): {', '.join(sorted(unknown))}")
    given: dict[str, Any] = {k: v for k, v in params.items() if v is not None}
    stop = string_list(given.pop("stop", ()), "stop")
    return gen_pb.SamplingParameters(stop=stop, **given)


def string_list(values: Iterable[str], field: str) -> list[str]:
    """`values` as a list; a bare string is a TypeError, since it would otherwise become one entry per
    character ("END" as three one-letter stop sequences, "spam" as four word-list entries)."""
    if isinstance(values, str):
        raise TypeError(f"{field} must be a sequence of strings, not a string")
    return list(values)


def action_name(action: int) -> str:
    """RELEASED, MASKED, HELD or BLOCKED."""
    return mod_pb.ModerationAction.Name(action).removeprefix("MODERATION_ACTION_")
