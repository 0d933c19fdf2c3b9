"""A long prompt joining a running batch: how long the running rows stall, with and without chunked
prefill (`prefill_chunk`), on a GPT-Neo-125M-shaped model with random weights.

    .venv/bin/python bench/bench_prefill.py            # ~2 minutes on 2 CPU cores
    .venv/bin/python bench/bench_prefill.py --quick    # tiny model, seconds (smoke test)

Workload, on the Batcher directly (no gRPC, no moderation): 4 requests decode (32-token prompts, greedy);
once they are running, one request with a long prompt (1,500 tokens) joins. Measured per setting,
interleaved over rounds: the longest gap between two decoding steps of the running rows (what a
streaming client sees as a stall), the running requests' total time, and the joiner's time to its
answer. The baseline is `prefill_chunk = 0` (one-pass prefill) in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from gateway_fixtures import prompts, write_gpt_neo_125m  # noqa: E402
from machine_info import cpu_name  # noqa: E402

from gateway.generation.batcher import Batcher  # noqa: E402
from gateway.generation.generator import Generator  # noqa: E402
from gateway.generation.model import load_model  # noqa: E402
from gateway.generation.params import SamplingParams  # noqa: E402


async def one_run(
    generator: Generator, chunk: int, running: list[str], long_prompt: str, new_tokens: int
) -> dict[str, float]:
    stamps: list[float] = []
    decoding = threading.Event()

    def observe(rows: int) -> None:
        stamps.append(time.perf_counter())
        if len(stamps) >= 5:
            decoding.set()

    batcher = Batcher(
        generator,
        max_batch_size=16,
        max_wait_ms=5,
        max_queue=16,
        prefill_chunk=chunk,
        observe_rows=observe,
    )
    params = SamplingParams(do_sample=False, max_new_tokens=new_tokens, min_new_tokens=new_tokens)
    joiner_params = SamplingParams(do_sample=False, max_new_tokens=8, min_new_tokens=8)

    def go(prompt: str, p: SamplingParams) -> asyncio.Future:
        return asyncio.ensure_future(
            batcher.generate(prompt, p, cancel=threading.Event(), should_stop=lambda: False)
        )

    try:
        started = time.perf_counter()
        running_tasks = [go(p, params) for p in running]
        await asyncio.to_thread(decoding.wait, 120)  # the running rows are decoding
        joined = time.perf_counter()
        joiner = go(long_prompt, joiner_params)
        await joiner
        joiner_s = time.perf_counter() - joined
        await asyncio.gather(*running_tasks)
        running_s = time.perf_counter() - started
    finally:
        batcher.shutdown()
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    return {"max_gap_s": max(gaps), "joiner_s": joiner_s, "running_s": running_s}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny model, short prompts (smoke test)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--chunk", type=int, default=256, help="the chunked setting to compare (default 256)")
    args = parser.parse_args(argv)
    long_tokens, new_tokens = (300, 24) if args.quick else (1500, 64)
    settings = (0, args.chunk)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = write_gpt_neo_125m(Path(tmp) / "gpt-neo", tiny=args.quick)
        generator = Generator(
            load_model(str(model_dir), revision=None, device="cpu", dtype="float32", prepack=True)
        )
        running = prompts(4, 32, seed=3)
        (long_prompt,) = prompts(1, long_tokens, seed=4)
        results: dict[int, list[dict[str, float]]] = {c: [] for c in settings}
        for round_no in range(args.rounds):
            for chunk in settings:
                results[chunk].append(
                    asyncio.run(one_run(generator, chunk, running, long_prompt, new_tokens))
                )
            print(f"round {round_no + 1} of {args.rounds} done", file=sys.stderr)

    def med(chunk: int, key: str) -> float:
        return statistics.median(r[key] for r in results[chunk])

    print(f"Machine: {cpu_name()}, {os.cpu_count()} logical CPUs; cpu_prepack on")
    print(
        f"4 running requests (32-token prompts, {new_tokens} new tokens) + one joining with a "
        f"{long_tokens}-token prompt; medians of {args.rounds} interleaved rounds\n"
    )
    print("| prefill_chunk | longest step gap of the running rows, s | running requests done, s ", end="")
    print("| joiner done, s |")
    print("|---|---|---|---|")
    for chunk in settings:
        label = "0 (one pass)" if chunk == 0 else str(chunk)
        gap, done, joiner = (med(chunk, key) for key in ("max_gap_s", "running_s", "joiner_s"))
        print(f"| {label} | {gap:.2f} | {done:.2f} | {joiner:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
