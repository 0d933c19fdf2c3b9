"""oneDNN-prepacked Linear layers for fp32 decoding on a CPU.

Why: a decoding step multiplies a few rows (one per request in the batch) by every weight matrix. For
such skinny products PyTorch's default CPU path (MKL sgemm) is far from the memory-bound ideal: on the
project's 2-core AMD EPYC a 768x3072 Linear on 16 rows took 4.4 ms, 4.6x its 1-row time, where the
weights-bound cost should barely grow. oneDNN's linear on a weight reordered once at load time took
1.6 ms (docs/benchmarks.md, "Generation kernels"); a whole GPT-Neo-125M decode step at 16 rows went from
275 to 123 ms. Prefill-sized products (hundreds of rows) gain ~10%.

oneDNN costs a fixed ~0.065 ms per call, so small layers lose: only layers with at least `MIN_WEIGHTS`
weights are swapped (768x768 and up; GPT-Neo-125M's are all 768x768 or larger, the demo model's none).

One or two rows are a different case, and which kernel wins there depends on the CPU: on host B (Zen 1)
oneDNN was 1.2x faster than stock at one row, on host C (an Intel Xeon with AVX-512 and AMX) MKL's
matrix-vector path was 1.3-2x faster than oneDNN at one and two rows (docs/benchmarks.md, "Round 2").
That made a lone request ~10% slower through the gateway than through a plain `generate` on the stock
layers. So each swapped layer keeps a reference to its original weight and runs the stock kernel for
inputs of at most `stock_rows` rows (setting `cpu_prepack_stock_rows`, default 2).
`calibrate_stock_rows` measures the crossover of one layer on this machine (`bench/bench_prepack.py`
prints it per layer shape); it is not run at load time, because a measurement taken while other
processes load the CPU is not reliable (seen: 0 where a quiet run said 2), and the kernel choice should
not vary from one start to the next.

`prepack_linear_layers` swaps those `torch.nn.Linear` layers of a CPU fp32 model for `PrepackedLinear`, after
checking on one layer that the op exists in this torch build and agrees with `F.linear` (to fp32
rounding). The ops are PyTorch's own (`torch.ops.mkldnn`, what torch.compile's CPU backend uses for
weight prepacking) but not a public API, hence the check and the `cpu_prepack = false` switch.

Memory: the packed weights are new (anonymous) memory, about the size of the swapped layers (0.5 GB for
GPT-Neo-125M with its tied output layer, ~5 GB for 1.3B). The originals came from the memory-mapped
checkpoint; their pages stay mapped (the embedding still uses the file) but are clean page cache that
the kernel can reclaim. Measured: RssAnon +0.5 GB, RssFile unchanged, for the 125M shape.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)

__all__ = [
    "PrepackUnavailable",
    "PrepackedLinear",
    "calibrate_stock_rows",
    "prepack_linear_layers",
    "prepack_on_cpu",
]

# The row count the weight layout is tuned for: a decoding batch of a few requests (chosen when the
# default max_batch_size was 8). Other row counts are computed correctly, only possibly a little slower.
BATCH_HINT = 16
# Weights (in x out) from which oneDNN wins at 4+ rows on the project's machine: 512x512 took 0.10 ms
# against 0.15 ms stock at 4 rows, 256x256 0.07 ms against 0.05 ms.
MIN_WEIGHTS = 512 * 1024


class PrepackUnavailable(RuntimeError):
    """This torch build has no usable oneDNN linear (the model then keeps its default kernels)."""


# Up to this many rows, the stock kernel (`cpu_prepack_stock_rows = "auto"` on an Intel CPU, measured on
# host C). On AMD CPUs oneDNN won from one row on both hosts measured (Zen 1: host B; Zen 4: host D,
# 29 ms against 46 ms for a one-row GPT-Neo-125M step): MKL, the stock kernel, takes slower code paths
# on CPUs that are not Intel's.
STOCK_ROWS = 2
AMD_STOCK_ROWS = 0
# Row counts tried by `calibrate_stock_rows`: past 8 rows oneDNN won on every layer and CPU measured.
CALIBRATION_ROWS = (1, 2, 4, 8)


class PrepackedLinear(torch.nn.Module):
    """`torch.nn.Linear`'s forward on a oneDNN-reordered copy of its weight (inference only); inputs of
    at most `stock_rows` rows go to the stock kernel on the original weight (kept only then)."""

    def __init__(self, linear: torch.nn.Linear, *, batch_hint: int = BATCH_HINT, stock_rows: int = 0) -> None:
        super().__init__()
        if stock_rows < 0:
            raise ValueError("stock_rows must be >= 0")
        self.in_features = linear.in_features
        self.out_features = linear.out_features
        self.stock_rows = stock_rows
        weight = linear.weight.detach()
        self.register_buffer("packed_weight", torch.ops.mkldnn._reorder_linear_weight(weight, batch_hint))
        bias = None if linear.bias is None else linear.bias.detach().clone()
        self.register_buffer("bias", bias)
        # Not a buffer: it is the checkpoint's tensor (often shared, e.g. a tied output layer), not state.
        self.stock_weight: torch.Tensor | None = weight if stock_rows else None
        self.stock_bias: torch.Tensor | None = bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features)
        if self.stock_weight is not None and rows.shape[0] <= self.stock_rows:
            return torch.nn.functional.linear(x, self.stock_weight, self.stock_bias)
        if not rows.is_contiguous():
            rows = rows.contiguous()
        out = torch.ops.mkldnn._linear_pointwise(rows, self.packed_weight, self.bias, "none", [], "")
        return out.reshape(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        stock = f", stock kernel up to {self.stock_rows} rows" if self.stock_rows else ""
        return f"in_features={self.in_features}, out_features={self.out_features}, oneDNN prepacked{stock}"


def cpu_vendor(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's vendor id ("GenuineIntel", "AuthenticAMD"), or "" where it cannot be read (not Linux)."""
    try:
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "vendor_id":
                return value.strip()
    except OSError:
        pass
    return ""


def stock_rows_for(setting: str, vendor: str | None = None) -> int:
    """`cpu_prepack_stock_rows` as a number: "auto" is a fixed rule by CPU vendor (the same at every
    start, unlike a timing taken while other processes load the CPU), a number is itself."""
    if setting != "auto":
        return int(setting)
    return (
        AMD_STOCK_ROWS if (vendor if vendor is not None else cpu_vendor()) == "AuthenticAMD" else STOCK_ROWS
    )


def _best_ms(fn: Any, x: torch.Tensor, repeats: int) -> float:
    """The least of `repeats` timings: other load only ever adds time."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        fn(x)
        best = min(best, time.perf_counter() - started)
    return best * 1000


def calibrate_stock_rows(linear: torch.nn.Linear, *, repeats: int = 7) -> int:
    """The largest row count up to which the stock kernel beat oneDNN on every count of
    `CALIBRATION_ROWS` tried so far, on this machine (0: oneDNN from one row). Both kernels are timed
    alternately and the best of `repeats` is kept, so a burst of other load disturbs both alike."""
    packed = PrepackedLinear(linear)
    stock_rows = 0
    generator = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        for rows in CALIBRATION_ROWS:
            x = torch.randn(rows, linear.in_features, generator=generator, dtype=linear.weight.dtype)
            linear(x), packed(x)  # first calls: allocations, oneDNN primitive creation
            stock_ms = packed_ms = float("inf")
            for _ in range(repeats):
                stock_ms = min(stock_ms, _best_ms(linear, x, 1))
                packed_ms = min(packed_ms, _best_ms(packed, x, 1))
            if stock_ms >= packed_ms:
                break
            stock_rows = rows
    return stock_rows


def _check(linear: torch.nn.Linear) -> None:
    """The op exists and computes what F.linear computes, on this machine, for a decode- and a
    prefill-shaped input."""
    if not torch.backends.mkldnn.is_available():
        raise PrepackUnavailable("this torch build has no oneDNN (mkldnn)")
    try:
        packed = PrepackedLinear(linear)
        generator = torch.Generator().manual_seed(0)
        for rows in (1, BATCH_HINT, 3 * BATCH_HINT + 1):
            x = torch.randn(rows, linear.in_features, generator=generator, dtype=linear.weight.dtype)
            with torch.inference_mode():
                want = torch.nn.functional.linear(x, linear.weight, linear.bias)
                got = packed(x)
            scale = float(want.abs().max()) or 1.0
            if got.shape != want.shape or float((got - want).abs().max()) > 1e-4 * scale:
                raise PrepackUnavailable(f"oneDNN linear disagrees with F.linear on {rows} rows")
    except PrepackUnavailable:
        raise
    except (RuntimeError, AttributeError) as exc:
        raise PrepackUnavailable(f"oneDNN linear is not usable here: {type(exc).__name__}: {exc}") from exc


def prepack_linear_layers(model: Any, *, min_weights: int = MIN_WEIGHTS, stock_rows: int = STOCK_ROWS) -> int:
    """Replaces the `torch.nn.Linear` layers of a CPU fp32 model that have at least `min_weights`
    weights, in place; returns how many. Raises PrepackUnavailable (the model untouched) when the check
    fails or the model is not CPU fp32. `stock_rows`: inputs of that many rows or fewer keep the stock
    kernel (the `cpu_prepack_stock_rows` setting)."""
    # (parent, name), not the layers: each original layer can go as soon as it is swapped.
    targets = [
        (parent, name)
        for parent in model.modules()
        for name, child in parent.named_children()
        if type(child) is torch.nn.Linear and child.in_features * child.out_features >= min_weights
    ]
    if not targets:
        return 0
    first = getattr(*targets[0])
    if first.weight.device.type != "cpu" or first.weight.dtype != torch.float32:
        raise PrepackUnavailable(
            f"prepacking is for fp32 on a CPU, not {first.weight.dtype} on {first.weight.device}"
        )
    _check(first)
    del first
    for parent, name in targets:
        setattr(parent, name, PrepackedLinear(getattr(parent, name), stock_rows=stock_rows))
    return len(targets)


def prepack_on_cpu(model: Any, stock_rows_setting: str, purpose: str) -> bool:
    """`prepack_linear_layers` with the `cpu_prepack_stock_rows` setting, saying what it did either way
    (a slower kernel is not an error, but not silent); True when layers were swapped. `purpose` names
    the model in the log ("GPT-Neo decoding", "detoxify scoring")."""
    try:
        vendor = cpu_vendor()
        rows = stock_rows_for(stock_rows_setting, vendor)
        count = prepack_linear_layers(model, stock_rows=rows)
    except PrepackUnavailable as exc:
        log.warning("%s: linear layers keep the default CPU kernels: %s", purpose, exc)
        return False
    if not count:
        log.info("%s: linear layers keep the default CPU kernels: none is large enough to gain", purpose)
        return False
    log.info(
        "%s: %d linear layers oneDNN-prepacked (cpu_prepack = true), stock up to %d rows%s",
        purpose,
        count,
        rows,
        f" (auto: {vendor or 'unknown'} CPU)" if stock_rows_setting == "auto" else "",
    )
    return True
