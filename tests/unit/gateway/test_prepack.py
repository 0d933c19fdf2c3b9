"""oneDNN-prepacked Linear layers compute what torch.nn.Linear computes, and the demo GPT-Neo writes
the same text with them (batched and alone: tests/unit/gateway/test_batcher.py runs on both)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from gateway.generation.generator import Generator
from gateway.generation.model import load_model
from gateway.generation.params import SamplingParams
from gateway.generation.prepack import (
    STOCK_ROWS,
    PrepackedLinear,
    PrepackUnavailable,
    calibrate_stock_rows,
    cpu_vendor,
    prepack_linear_layers,
    stock_rows_for,
)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(1, 24), (16, 24), (3, 7, 24), (2, 1, 5, 24)])
def test_prepacked_linear_equals_linear(bias: bool, shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    linear = torch.nn.Linear(24, 40, bias=bias)
    x = torch.randn(*shape)
    with torch.inference_mode():
        want = linear(x)
        got = PrepackedLinear(linear)(x)
        transposed = PrepackedLinear(linear)(torch.randn(24, shape[0]).t())  # a non-contiguous input
    assert got.shape == want.shape == (*shape[:-1], 40)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    assert transposed.shape == (shape[0], 40)


@pytest.mark.parametrize("shape", [(1, 24), (2, 24), (1, 2, 24), (3, 24), (16, 24), (2, 3, 24)])
def test_inputs_of_few_rows_take_the_stock_kernel_on_the_original_weight(shape: tuple[int, ...]) -> None:
    """With `stock_rows=2`, one or two rows are computed by F.linear on the layer's own weight, more rows
    by oneDNN on the packed copy. The packed copy is a zero weight here, to tell the two paths apart."""
    torch.manual_seed(0)
    linear = torch.nn.Linear(24, 40)
    packed = PrepackedLinear(linear, stock_rows=2)
    zero = torch.nn.Linear(24, 40)
    torch.nn.init.zeros_(zero.weight)
    packed.packed_weight = PrepackedLinear(zero).packed_weight
    x = torch.randn(*shape)
    with torch.inference_mode():
        got = packed(x)
        want = linear(x)
    rows = x.reshape(-1, 24).shape[0]
    if rows <= 2:
        assert torch.equal(got, want)
    else:
        assert torch.equal(got, linear.bias.detach().expand_as(got))  # zero weights: the bias alone


def test_stock_rows_zero_keeps_no_reference_to_the_original_weight() -> None:
    linear = torch.nn.Linear(24, 40)
    assert PrepackedLinear(linear).stock_weight is None
    assert PrepackedLinear(linear, stock_rows=1).stock_weight is not None
    with pytest.raises(ValueError, match="stock_rows"):
        PrepackedLinear(linear, stock_rows=-1)


def test_calibration_returns_a_measured_row_count() -> None:
    """Which kernel wins depends on the machine; the answer is one of the counts tried, or 0."""
    assert calibrate_stock_rows(torch.nn.Linear(64, 128), repeats=2) in (0, 1, 2, 4, 8)


def test_prepacking_passes_stock_rows_to_every_layer() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Linear(16, 4)).eval()
    assert prepack_linear_layers(model, min_weights=0, stock_rows=3) == 2
    assert [m.stock_rows for m in model.modules() if isinstance(m, PrepackedLinear)] == [3, 3]


def test_large_enough_linears_are_replaced_and_other_modules_are_kept() -> None:
    model = torch.nn.Sequential(
        torch.nn.Linear(8, 16),
        torch.nn.GELU(),
        torch.nn.Sequential(torch.nn.Linear(16, 4), torch.nn.LayerNorm(4)),
    ).eval()
    x = torch.randn(5, 8)
    with torch.inference_mode():
        want = model(x)
        assert prepack_linear_layers(model, min_weights=100) == 1  # 8x16 = 128 weights; 16x4 = 64 stays
        assert type(model[2][0]) is torch.nn.Linear
        assert prepack_linear_layers(model, min_weights=0) == 1
        got = model(x)
    assert [type(m).__name__ for m in model.modules()].count("PrepackedLinear") == 2
    assert not any(type(m) is torch.nn.Linear for m in model.modules())
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_only_fp32_models_are_prepacked_and_a_refused_model_is_untouched() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(8, 16)).to(torch.bfloat16)
    with pytest.raises(PrepackUnavailable, match="fp32 on a CPU"):
        prepack_linear_layers(model, min_weights=0)
    assert type(model[0]) is torch.nn.Linear


def test_demo_model_text_is_the_same_with_prepacked_layers(demo_model_dir: Path) -> None:
    default = Generator(load_model(str(demo_model_dir), revision=None, device="cpu", dtype="float32"))
    packed_model = load_model(str(demo_model_dir), revision=None, device="cpu", dtype="float32", prepack=True)
    assert packed_model.kernels == "default", "the demo model's layers are too small to gain"
    assert prepack_linear_layers(packed_model.model, min_weights=0) == 2 * 6 + 1  # q k v out fc proj, head
    packed = Generator(packed_model)
    for params in (
        SamplingParams(do_sample=False, max_new_tokens=40),
        SamplingParams(seed=3, max_new_tokens=40, temperature=0.8, top_p=0.9),
    ):
        for prompt in ("The meaning of life is", "Once upon a time in a small village"):
            assert packed.generate(prompt, params, should_stop=lambda: False) == default.generate(
                prompt, params, should_stop=lambda: False
            )


def test_auto_stock_rows_follow_the_cpu_vendor(tmp_path: Path) -> None:
    """Measured: MKL's one-row products beat oneDNN's on the Intel host, oneDNN wins from one row on
    both AMD hosts (docs/benchmarks.md). A number is taken as it is."""
    assert stock_rows_for("auto", "GenuineIntel") == STOCK_ROWS == 2
    assert stock_rows_for("auto", "AuthenticAMD") == 0
    assert stock_rows_for("auto", "") == STOCK_ROWS
    assert stock_rows_for("5", "AuthenticAMD") == 5 and stock_rows_for("0", "GenuineIntel") == 0
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\n")
    assert cpu_vendor(cpuinfo) == "AuthenticAMD"
    assert cpu_vendor(tmp_path / "missing") == ""


def _moderation_settings(tmp_path: Path, *, quantize: bool = False, cpu_prepack: bool = True):
    """Settings whose [moderation] table loads a small detoxify model with layers large enough to
    prepack (256 x 2048 = MIN_WEIGHTS), scoring on the CPU."""
    from gateway.config import Settings
    from moderation.testing import build_tiny_detoxify_checkpoint

    checkpoint, config_dir = build_tiny_detoxify_checkpoint(
        tmp_path / ("int8" if quantize else "fp32"), hidden_size=256, num_heads=4, intermediate_size=2048
    )
    scorer = {
        "type": "detoxify",
        "checkpoint": str(checkpoint),
        "huggingface_config_path": str(config_dir),
        "device": "cpu",
        "quantize": quantize,
    }
    table = {"default_policy": "default", "scorers": [{"type": "profanity"}, scorer]}
    return Settings(moderation=table, cpu_prepack=cpu_prepack, cpu_prepack_stock_rows="0")


def _detoxify(moderator):
    from moderation.scorers.detoxify_scorer import DetoxifyScorer

    (scorer,) = [s for s in moderator.scorers if isinstance(s, DetoxifyScorer)]
    return scorer


def test_cpu_prepack_also_prepacks_detoxify_with_the_same_scores(tmp_path: Path) -> None:
    from gateway.pipeline.moderation_setup import load_moderator

    texts = ["you are a stupid idiot", "have a nice day", "", "what a great game, really great " * 9]
    plain = _detoxify(load_moderator(_moderation_settings(tmp_path, cpu_prepack=False)))
    packed = _detoxify(load_moderator(_moderation_settings(tmp_path)))
    assert not any(isinstance(m, PrepackedLinear) for m in plain.network.modules())
    swapped = [m for m in packed.network.modules() if isinstance(m, PrepackedLinear)]
    assert len(swapped) == 4  # the two feed-forward layers of each of the two blocks
    assert packed.version == plain.version  # the same model, computed by another kernel
    for a, b in zip(plain.score(texts), packed.score(texts), strict=True):
        for label, value in a.scores.items():
            assert b.scores[label] == pytest.approx(value, abs=1e-5)


def test_an_int8_detoxify_is_not_prepacked(tmp_path: Path) -> None:
    from gateway.pipeline.moderation_setup import load_moderator, prepack_scorers

    moderator = load_moderator(_moderation_settings(tmp_path, quantize=True))
    assert _detoxify(moderator).quantized
    assert prepack_scorers(moderator, "0") == 0
    assert not any(isinstance(m, PrepackedLinear) for m in _detoxify(moderator).network.modules())
