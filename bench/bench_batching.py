"""Mixed-parameter batches (per-request processors) vs batches grouped by sampling parameters.

    .venv/bin/python bench/bench_batching.py            # GPT-Neo-125M shape, ~2 minutes on 2 CPU cores
    .venv/bin/python bench/bench_batching.py --device cuda --requests 64

The question: when concurrent requests ask for different sampling knobs, is it better to batch them
together and apply each request's processors to its own rows (what the batcher does), or to batch only
requests with equal knobs, so that one set of processors runs over the whole batch (what
`model.generate` allows)? Workload: 16 requests at once (4 knob sets x 4), 32-token prompts, 64 new
tokens each (min = max, so equal work), on the Batcher directly (no gRPC, no moderation). Both modes run
interleaved, and the batcher's own timers say what share of a decoding step the per-request token
choice costs. A second table times each knob set's processors + sampling on 4 rows in one call (what
grouping allows) against 4 one-row calls (what mixing does): the most grouping could save per step.
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
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from gateway_fixtures import prompts, write_gpt_neo_125m  # noqa: E402

from gateway.generation.batcher import Batcher  # noqa: E402
from gateway.generation.generator import Generator  # noqa: E402
from gateway.generation.model import load_model  # noqa: E402
from gateway.generation.params import SamplingParams  # noqa: E402


def knob_sets(new_tokens: int) -> list[SamplingParams]:
    common: dict[str, Any] = {"max_new_tokens": new_tokens, "min_new_tokens": new_tokens}
    return [
        SamplingParams(do_sample=False, **common),
        SamplingParams(seed=1, temperature=0.7, top_p=0.9, top_k=0, **common),
        SamplingParams(seed=2, top_k=40, **common),
        SamplingParams(seed=3, repetition_penalty=1.2, temperature=1.3, **common),
    ]


async def one_round(batcher: Batcher, texts: list[str], sets: list[SamplingParams]) -> float:
    started = time.perf_counter()
    await asyncio.gather(
        *(
            batcher.generate(t, sets[i % len(sets)], cancel=threading.Event(), should_stop=lambda: False)
            for i, t in enumerate(texts)
        )
    )
    return time.perf_counter() - started


def choice_costs(sets: list[SamplingParams], vocab: int, device: str, repeat: int = 20) -> list[str]:
    """Milliseconds per step for 4 rows of each knob set: one call on 4 rows vs 4 calls on one row."""
    import torch

    from gateway.generation.sampling import RequestSampler

    rows = []
    for params in sets:
        sampler = RequestSampler(params, eos_token_id=0, device=device)
        logits = torch.randn(4, vocab, device=device)
        ids = torch.randint(0, vocab, (4, 96), device=device)
        timings = []
        for calls in ((slice(0, 4),), tuple(slice(i, i + 1) for i in range(4))):
            sampler.choose(ids[calls[0]], logits[calls[0]], 64)
            started = time.perf_counter()
            for _ in range(repeat):
                for part in calls:
                    sampler.choose(ids[part], logits[part], 64).tolist()
            timings.append((time.perf_counter() - started) / repeat * 1000)
        knobs = (
            "greedy"
            if not params.do_sample
            else f"T={params.temperature:g} top_k={params.top_k} top_p={params.top_p:g} "
            f"rep={params.repetition_penalty:g}"
        )
        rows.append(f"| {knobs} | {timings[0]:.2f} | {timings[1]:.2f} |")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--requests", type=int, default=16)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="tiny model (smoke run)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = write_gpt_neo_125m(Path(tmp) / "model", tiny=args.quick)
        generator = Generator(load_model(str(model_dir), revision=None, device=args.device, dtype="float32"))
    texts = prompts(args.requests, 32)
    sets = knob_sets(args.new_tokens)
    batchers = {
        "mixed knobs in one batch (per-request processors)": Batcher(
            generator, max_batch_size=args.requests, max_wait_ms=50, max_queue=1000
        ),
        "grouped by knobs (one processor set per batch)": Batcher(
            generator, max_batch_size=args.requests, max_wait_ms=50, max_queue=1000, group_by_params=True
        ),
    }
    walls: dict[str, list[float]] = {name: [] for name in batchers}

    async def run_all() -> None:
        for batcher in batchers.values():  # warm-up
            await one_round(batcher, texts[:4], sets)
        for _ in range(args.rounds):
            for name, batcher in batchers.items():
                walls[name].append(await one_round(batcher, texts, sets))
                print(f"{name}: {walls[name][-1]:.1f}s", file=sys.stderr, flush=True)

    asyncio.run(run_all())
    tokens = args.requests * args.new_tokens
    print(
        f"{args.requests} requests ({len(sets)} knob sets), {args.new_tokens} new tokens each, device "
        f"{args.device}, {args.rounds} interleaved rounds (median)\n"
    )
    print("| batching | generated tok/s | mean rows per step | token choice share of step time |")
    print("|---|---|---|---|")
    for name, batcher in batchers.items():
        stats = batcher.stats()
        rows = sum(k * v for k, v in stats.rows_per_step.items()) / max(1, stats.steps)
        share = stats.choose_s / max(1e-9, stats.choose_s + stats.forward_s)
        print(f"| {name} | {tokens / statistics.median(walls[name]):.1f} | {rows:.1f} | {share:.1%} |")
        batcher.shutdown()
    print("\n| knob set (4 rows) | one call on 4 rows, ms | 4 one-row calls, ms |\n|---|---|---|")
    vocab = int(generator.loaded.vocab_size)
    print("\n".join(choice_costs(sets, vocab, generator.loaded.device)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
