import math

import pytest

from gateway.errors import InvalidArgument
from gateway.generation.params import (
    Limits,
    RawParams,
    check_context,
    resolve,
    validate_prompt,
    validate_prompts,
)

LIMITS = Limits(context_length=2048, vocab_size=1000, max_new_tokens=512)


def test_defaults_are_filled_and_seed_is_chosen() -> None:
    p = resolve(RawParams(), LIMITS)
    assert (p.temperature, p.top_p, p.top_k, p.max_new_tokens) == (1.0, 1.0, 50, 64)
    assert p.do_sample is True and p.num_return_sequences == 1
    assert 0 <= p.seed < 2**63
    assert resolve(RawParams(), LIMITS).seed != p.seed or resolve(RawParams(), LIMITS).seed != p.seed


def test_given_values_are_kept() -> None:
    raw = RawParams(
        temperature=0.5, top_p=0.5, top_k=0, max_new_tokens=10, do_sample=False, seed=7, stop=("\n",)
    )
    p = resolve(raw, LIMITS)
    assert (p.temperature, p.top_p, p.top_k, p.max_new_tokens, p.do_sample, p.seed, p.stop) == (
        0.5,
        0.5,
        0,
        10,
        False,
        7,
        ("\n",),
    )


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (RawParams(temperature=0.0), "temperature"),
        (RawParams(temperature=-1.0), "temperature"),
        (RawParams(temperature=math.nan), "temperature"),
        (RawParams(temperature=math.inf), "temperature"),
        (RawParams(top_p=0.0), "top_p"),
        (RawParams(top_p=1.5), "top_p"),
        (RawParams(top_k=-1), "top_k"),
        (RawParams(top_k=1001), "top_k"),
        (RawParams(max_new_tokens=0), "max_new_tokens"),
        (RawParams(max_new_tokens=513), "max_new_tokens"),
        (RawParams(repetition_penalty=0.0), "repetition_penalty"),
        # divisors of the logits: near zero they overflow them to infinities and the sampling to NaN
        (RawParams(repetition_penalty=1.6e-158), "repetition_penalty"),
        (RawParams(temperature=1e-300), "temperature"),
        (RawParams(temperature=0.005), "temperature"),
        (RawParams(repetition_penalty=11.0), "repetition_penalty"),
        (RawParams(num_return_sequences=0), "num_return_sequences"),
        (RawParams(num_return_sequences=9), "num_return_sequences"),
        (RawParams(min_new_tokens=65), "min_new_tokens"),
        (RawParams(seed=-1), "seed"),
        (RawParams(stop=("",)), "stop[0]"),
        (RawParams(stop=("x" * 65,)), "stop[0]"),
        (RawParams(stop=tuple("abcdefghi")), "stop"),
        (RawParams(stop=("ok", "a\x00b")), "stop[1]"),
    ],
)
def test_each_bad_parameter_is_named(raw: RawParams, field: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        resolve(raw, LIMITS)
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")


def test_prompts() -> None:
    validate_prompts(["a", "b"], LIMITS, field="input_string")
    with pytest.raises(InvalidArgument, match=r"^input_string: at least one"):
        validate_prompts([], LIMITS, field="input_string")
    with pytest.raises(InvalidArgument, match=r"^input_string\[1\]: must not be empty"):
        validate_prompts(["a", "  "], LIMITS, field="input_string")
    with pytest.raises(InvalidArgument, match="at most 16 prompts"):
        validate_prompts(["a"] * 17, LIMITS, field="input_string")
    with pytest.raises(InvalidArgument, match="NUL"):
        validate_prompt("a\x00b", LIMITS, field="input_string")
    with pytest.raises(InvalidArgument, match="at most 32000 characters"):
        validate_prompt("a" * 32_001, LIMITS, field="input_string")


def test_context_window() -> None:
    p = resolve(RawParams(max_new_tokens=100), LIMITS)
    check_context(1948, p, LIMITS, field="input_string")
    with pytest.raises(InvalidArgument, match="exceeds the model's context of 2048 tokens"):
        check_context(1949, p, LIMITS, field="input_string")


def test_one_table_of_sampling_parameters() -> None:
    """SCALAR_PARAMS (+ stop) is the one list: the dataclasses, the proto and the CLI agree with it."""
    from google.protobuf.descriptor import FieldDescriptor

    from gateway.api.v1 import generation_pb2 as gen_pb
    from gateway.cli import generate
    from gateway.generation.params import PARAMETER_NAMES, SCALAR_PARAMS, RawParams, SamplingParams

    assert (
        set(PARAMETER_NAMES)
        == set(RawParams.__dataclass_fields__)
        == set(SamplingParams.__dataclass_fields__)
    )
    fields = gen_pb.SamplingParameters.DESCRIPTOR.fields_by_name
    assert set(fields) == set(PARAMETER_NAMES)
    proto_kind = {
        FieldDescriptor.CPPTYPE_FLOAT: float,
        FieldDescriptor.CPPTYPE_DOUBLE: float,
        FieldDescriptor.CPPTYPE_INT32: int,
        FieldDescriptor.CPPTYPE_UINT64: int,
        FieldDescriptor.CPPTYPE_INT64: int,
        FieldDescriptor.CPPTYPE_BOOL: bool,
    }
    assert {name: proto_kind[fields[name].cpp_type] for name in SCALAR_PARAMS} == SCALAR_PARAMS
    assert {p.name for p in generate.params} >= set(PARAMETER_NAMES)
