"""Generation kernels on a CPU: the stock Linear layers (MKL sgemm) vs oneDNN-prepacked ones
(`cpu_prepack`, gateway/generation/prepack.py), on a GPT-Neo-125M-shaped model with random weights.

    .venv/bin/python bench/bench_prepack.py            # ~2 minutes on 2 CPU cores
    .venv/bin/python bench/bench_prepack.py --quick    # tiny model, seconds (smoke test)

Three measurements, each for both kernels, interleaved over rounds so that other load on a shared
machine hits both alike: (1) one Linear(768, 3072) on 1, 4, 16 and 512 rows; (2) one decoding step of
the whole model (KV cache at 32 + a few tokens) for 1, 4 and 16 rows, and the prefill of 16 x 32-token
prompts; (3) the dynamic batcher serving 16 concurrent greedy requests of 64 new tokens (tok/s). The
baseline of every ratio is the stock kernel in the same run; the greedy texts of (3) must be identical.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import torch  # noqa: E402
from gateway_fixtures import prompts, write_gpt_neo_125m  # noqa: E402
from machine_info import cpu_name  # noqa: E402

from gateway.generation.batcher import Batcher  # noqa: E402
from gateway.generation.generator import Generator  # noqa: E402
from gateway.generation.kv_batch import BatchState  # noqa: E402
from gateway.generation.model import LoadedModel, load_model  # noqa: E402
from gateway.generation.params import SamplingParams  # noqa: E402
from gateway.generation.prepack import CALIBRATION_ROWS, PrepackedLinear, calibrate_stock_rows  # noqa: E402

KERNELS = ("stock", "prepacked")


def ms(fn: Callable[[], object], seconds: float) -> float:
    """Mean milliseconds per call over at least `seconds` (after one warm-up call)."""
    fn()
    calls, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds or calls < 3:
        fn()
        calls += 1
    return elapsed / calls * 1e3


def linear_cases(hidden: int, inner: int) -> dict[str, Callable[[str], Callable[[], object]]]:
    torch.manual_seed(0)
    stock = torch.nn.Linear(hidden, inner).eval()
    packed = PrepackedLinear(stock)
    cases = {}
    for rows in (1, 4, 16, 512):
        x = torch.randn(rows, hidden)
        cases[f"Linear({hidden}, {inner}), {rows} rows"] = lambda k, x=x: (
            lambda: (stock if k == "stock" else packed)(x)
        )
    return cases


def model_cases(models: dict[str, LoadedModel], prompt_ids: list[int]) -> dict[str, Any]:
    cases: dict[str, Any] = {}
    pad = models["stock"].tokenizer.pad_token_id

    def step_case(rows: int) -> Callable[[str], Callable[[], object]]:
        def make(kernel: str) -> Callable[[], object]:
            model = models[kernel].model
            state, logits = BatchState.prefill(model, [prompt_ids] * rows, [1] * rows, pad_token_id=pad)
            state.rows = list(range(rows))
            state.next_tokens = logits.argmax(-1)
            for _ in range(3):  # a few tokens into the cache
                state.next_tokens = state.step(model).argmax(-1)

            def step() -> None:  # each call decodes one more token: the cache grows alike for both
                state.next_tokens = state.step(model).argmax(-1)

            return step

        return make

    for rows in (1, 4, 16):
        cases[f"GPT-Neo-125M decoding step, {rows} rows"] = step_case(rows)
    cases["GPT-Neo-125M prefill, 16 x 32 tokens"] = lambda k: (
        lambda: BatchState.prefill(models[k].model, [prompt_ids] * 16, [1] * 16, pad_token_id=pad)
    )
    return cases


async def serve(generator: Generator, texts: list[str], params: SamplingParams) -> tuple[float, list[str]]:
    batcher = Batcher(generator, max_batch_size=len(texts), max_wait_ms=5, max_queue=len(texts))
    try:
        await batcher.generate(texts[0], params, cancel=threading.Event(), should_stop=lambda: False)
        started = time.perf_counter()
        done = await asyncio.gather(
            *(batcher.generate(t, params, cancel=threading.Event(), should_stop=lambda: False) for t in texts)
        )
        elapsed = time.perf_counter() - started
    finally:
        batcher.shutdown()
    return len(texts) * params.max_new_tokens / elapsed, [seqs[0].text for seqs in done]


def crossovers(model: Any) -> dict[str, int]:
    """`calibrate_stock_rows` for each distinct Linear shape of the (stock) model."""
    found: dict[str, int] = {}
    for module in model.modules():
        if type(module) is torch.nn.Linear:
            shape = f"{module.in_features} x {module.out_features}"
            if shape not in found:
                found[shape] = calibrate_stock_rows(module)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny model and short runs (smoke test)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--seconds", type=float, default=None, help="per measurement (default 1.5, quick 0.05)"
    )
    args = parser.parse_args(argv)
    seconds = args.seconds if args.seconds is not None else (0.05 if args.quick else 1.5)
    new_tokens = 8 if args.quick else 64
    torch.set_grad_enabled(False)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = write_gpt_neo_125m(Path(tmp) / "gpt-neo", tiny=args.quick)
        models = {
            k: load_model(
                str(model_dir),
                revision=None,
                device="cpu",
                dtype="float32",
                prepack=k == "prepacked",
                stock_rows=0,  # oneDNN at every row count; the crossover is measured below
            )
            for k in KERNELS
        }
        assert models["prepacked"].kernels == "onednn-prepacked", "oneDNN prepacking is not usable here"
        texts = prompts(16, 32, seed=5)
        prompt_ids = models["stock"].tokenizer(texts[0])["input_ids"]
        hidden = models["stock"].model.config.hidden_size
        cases = {**linear_cases(hidden, 4 * hidden), **model_cases(models, prompt_ids)}
        times: dict[tuple[str, str], list[float]] = {}
        rates: dict[str, list[float]] = {}
        outputs: dict[str, list[str]] = {}
        params = SamplingParams(do_sample=False, max_new_tokens=new_tokens, min_new_tokens=new_tokens)
        with torch.inference_mode():
            for round_no in range(args.rounds):
                for name, make in cases.items():
                    for kernel in KERNELS:
                        times.setdefault((name, kernel), []).append(ms(make(kernel), seconds))
                for kernel in KERNELS:
                    rate, outputs[kernel] = asyncio.run(serve(Generator(models[kernel]), texts, params))
                    rates.setdefault(kernel, []).append(rate)
                print(f"round {round_no + 1} of {args.rounds} done", file=sys.stderr)
        crossover = crossovers(models["stock"].model)
    same = outputs["stock"] == outputs["prepacked"]
    print(
        f"Machine: {cpu_name()}, {os.cpu_count()} logical CPUs, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads)"
    )
    print(f"{args.rounds} interleaved rounds; medians\n")
    print("| operation | stock ms | prepacked ms | speed-up |")
    print("|---|---|---|---|")
    for name in cases:
        a, b = (statistics.median(times[(name, k)]) for k in KERNELS)
        print(f"| {name} | {a:.2f} | {b:.2f} | {a / b:.2f}x |")
    a, b = (statistics.median(rates[k]) for k in KERNELS)
    print(
        f"| batcher, 16 concurrent greedy requests x {new_tokens} tokens (tok/s) | {a:.1f} | {b:.1f} "
        f"| {b / a:.2f}x |"
    )
    print(f"\ngreedy texts identical with both kernels: {same}")
    print(
        f"\nStock kernel faster than oneDNN up to N rows (of {', '.join(map(str, CALIBRATION_ROWS))}; "
        'the `cpu_prepack_stock_rows` setting; "auto": 2 on Intel, 0 on AMD):\n'
    )
    print("| layer (in x out) | N |\n|---|---|")
    for shape, rows in crossover.items():
        print(f"| {shape} | {rows} |")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
