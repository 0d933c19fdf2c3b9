"""Moderation throughput: a BERT-base-shaped detoxify model (fp32 and int8) and the cheap scorers.

    .venv/bin/python bench/bench_moderation.py            # the real shapes; a few minutes on 2 CPU cores
    .venv/bin/python bench/bench_moderation.py --quick    # tiny model, seconds: checks the script runs

The model has random weights at the real shape (hidden 768, 12 layers, 12 heads, vocabulary 30522),
written in detoxify's checkpoint format to a temporary directory and loaded through the real `Detoxify`
class, so loading and inference take the production path; only the scores are meaningless. Texts are
~80 tokens. The baseline in the same run is detoxify's own `predict` at the same batch size; int8 is
compared with fp32 on the shipped labelled set (max absolute score difference).
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from moderation.evaluation import read_labelled
from moderation.scorers.profanity import ProfanityScorer

DATA = Path(__file__).resolve().parents[1] / "moderation" / "data" / "labelled_eval.csv"


def texts_of_tokens(words: Sequence[str], count: int, tokens: int, seed: int = 0) -> list[str]:
    """`count` texts of `tokens` vocabulary words each (one token per word with the bench tokenizer)."""
    rng = random.Random(seed)
    return [" ".join(rng.choice(words) for _ in range(tokens)) for _ in range(count)]


def rate(fn: Callable[[list[str]], object], texts: list[str], batch: int, *, min_seconds: float) -> float:
    """Texts per second for `fn` called on consecutive batches; repeats until `min_seconds` elapsed."""
    fn(texts[:batch])  # warm-up
    done = 0
    start = time.perf_counter()
    while True:
        for i in range(0, len(texts), batch):
            fn(texts[i : i + batch])
            done += len(texts[i : i + batch])
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return done / elapsed


def measure(
    cases: Sequence[tuple[str, int, Callable[[list[str]], object], list[str]]],
    *,
    rounds: int,
    seconds: float,
    baseline: str | None = None,
) -> list[tuple[str, str, float, float, str]]:
    """Run the cases interleaved, `rounds` times, so that load from other processes on a shared machine
    hits every case alike; rows of (name, batch, median texts/s, best texts/s, speed-up vs baseline)."""
    results: dict[int, list[float]] = {i: [] for i in range(len(cases))}
    for _ in range(rounds):
        for i, (_, batch, fn, texts) in enumerate(cases):
            results[i].append(rate(fn, texts, batch, min_seconds=seconds))
        print(f"round done: {len(cases)} cases", file=sys.stderr)
    rows = []
    for i, (name, batch, _, _) in enumerate(cases):
        median = statistics.median(results[i])
        speedup = ""
        if baseline is not None:
            base = next(j for j, (n, b, _, _) in enumerate(cases) if b == batch and baseline in n)
            speedup = f"{median / statistics.median(results[base]):.2f}x"
        rows.append((name, str(batch), median, max(results[i]), speedup))
    return rows


def linear_ceiling(
    hidden: int, intermediate: int, rows: int, *, rounds: int, seconds: float
) -> tuple[float, float]:
    """Median ms of one `Linear(hidden, intermediate)` on `rows` token rows, fp32 then int8 dynamic.

    Why: Linear layers are over 90% of BERT-base's CPU time (torch.profiler, fp32 and int8 alike), so the
    int8/fp32 ratio of this one kernel on this CPU bounds what quantizing the whole model can gain here.
    """
    import torch

    from moderation.scorers.detoxify_scorer import quantize_linear_layers

    torch.manual_seed(0)
    fp32 = torch.nn.Sequential(torch.nn.Linear(hidden, intermediate)).eval()
    int8 = quantize_linear_layers(fp32)
    x = torch.randn(rows, hidden)
    times: dict[str, list[float]] = {"fp32": [], "int8": []}
    with torch.inference_mode():
        for _ in range(rounds):
            for name, net in (("fp32", fp32), ("int8", int8)):
                net(x)  # warm-up
                calls, start = 0, time.perf_counter()
                while (elapsed := time.perf_counter() - start) < seconds / 4 or calls < 3:
                    net(x)
                    calls += 1
                times[name].append(elapsed / calls * 1e3)
    return statistics.median(times["fp32"]), statistics.median(times["int8"])


def machine() -> str:
    import torch
    from machine_info import cpu_name

    cpu = cpu_name()
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    load = ""
    if hasattr(os, "getloadavg"):
        load = ", load average {:.2f}/{:.2f}/{:.2f}".format(*os.getloadavg())
    return (
        f"{cpu}, {os.cpu_count()} logical CPUs, torch threads {torch.get_num_threads()}, {device}; "
        f"Python {platform.python_version()}, torch {torch.__version__}{load}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny model and short runs (smoke test)")
    parser.add_argument("--tokens", type=int, default=80, help="tokens per text")
    parser.add_argument("--seconds", type=float, default=None, help="minimum seconds per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per measurement")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or auto; int8 is CPU-only")
    args = parser.parse_args(argv)

    import torch

    from moderation.scorers.detoxify_scorer import DetoxifyScorer
    from moderation.testing import build_tiny_detoxify_checkpoint

    min_seconds = args.seconds if args.seconds is not None else (0.2 if args.quick else 4.0)
    labelled = [e.text for e in read_labelled(DATA)]
    vocab_words = sorted({w.strip(".,!?'\"").lower() for t in labelled for w in t.split()} - {""})
    shape = (
        dict(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, vocab_size=2000)
        if args.quick
        else dict(hidden_size=768, num_layers=12, num_heads=12, intermediate_size=3072, vocab_size=30522)
    )
    rows: list[tuple[str, str, float, float, str]] = []
    print(f"machine: {machine()}", file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        checkpoint, config_dir = build_tiny_detoxify_checkpoint(
            tmp, max_position_embeddings=512, vocab_words=vocab_words, **shape
        )
        size_mb = checkpoint.stat().st_size / 1e6
        print(f"built checkpoint ({size_mb:.0f} MB) in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
        fp32 = DetoxifyScorer(checkpoint=checkpoint, huggingface_config_path=config_dir, device=args.device)
        variants = [("fp32", fp32)]
        if fp32.device == "cpu":
            int8 = DetoxifyScorer(
                checkpoint=checkpoint, huggingface_config_path=config_dir, device="cpu", quantize=True
            )
            variants.append(("int8 dynamic", int8))
        words = [w for w in vocab_words if w.isalpha() and w.isascii()]
        texts = texts_of_tokens(words, 16 if args.quick else 32, args.tokens)
        measured = fp32._tokenizer(texts[:4], add_special_tokens=True)["input_ids"]
        tokens = statistics.mean(len(ids) for ids in measured)
        label = f"BERT-base detoxify ({tokens:.0f}-token texts)" if not args.quick else "tiny BERT (quick)"

        predict = fp32.detoxify.predict
        cases: list[tuple[str, int, Callable[[list[str]], object], list[str]]] = []
        for batch in (1, 16):
            cases.append(
                (f"{label}, detoxify `predict` (baseline)", batch, lambda b: predict(list(b)), texts)
            )
            cases += [(f"{label}, DetoxifyScorer {name}", batch, sc.score, texts) for name, sc in variants]
        rows += measure(cases, rounds=args.rounds, seconds=min_seconds, baseline="baseline")
        comparison = ""
        if len(variants) > 1:
            by_case = {(name, batch): median for name, batch, median, _, _ in rows}
            for batch in ("1", "16"):
                ratio = (
                    by_case[(f"{label}, DetoxifyScorer int8 dynamic", batch)]
                    / by_case[(f"{label}, DetoxifyScorer fp32", batch)]
                )
                comparison += f"\nint8 / fp32 DetoxifyScorer, {batch} per call: {ratio:.2f}x"
            hidden, inter = shape["hidden_size"], shape["intermediate_size"]
            ms32, ms8 = linear_ceiling(
                hidden, inter, round(16 * tokens), rounds=args.rounds, seconds=min_seconds
            )
            comparison += (
                f"\nint8 kernel ceiling on this CPU: one Linear({hidden}, {inter}) on {round(16 * tokens)} "
                f"token rows: fp32 {ms32:.2f} ms, int8 dynamic {ms8:.2f} ms, {ms32 / ms8:.2f}x"
            )
            a = fp32.score(labelled)
            b = variants[1][1].score(labelled)
            pairs = [(x.scores[k], y.scores[k]) for x, y in zip(a, b, strict=True) for k in x.scores]
            max_diff = max(abs(x - y) for x, y in pairs)
            mean_diff = statistics.mean(abs(x - y) for x, y in pairs)
            comparison += (
                f"\nint8 vs fp32 on the labelled set ({len(labelled)} texts x {len(a[0].scores)} labels): "
                f"max |score difference| {max_diff:.4f}, mean {mean_diff:.5f}"
            )

    # ASCII texts take the word list's fast path; texts drawn from every word of the labelled set (its
    # Russian, Greek, accented and disguised rows included) carry a few non-ASCII words each and are folded
    # (moderation/folding.py) before matching.
    ascii_words = [w for w in vocab_words if w.isascii()]
    count = 2000 if args.quick else 5000
    word_texts = texts_of_tokens(ascii_words, count, args.tokens, seed=1)
    mixed_texts = texts_of_tokens(vocab_words, count, args.tokens, seed=1)
    mixed_share = sum(not t.isascii() for t in mixed_texts) / len(mixed_texts)
    profanity = ProfanityScorer()
    cheap = [
        (f"profanity word list ({args.tokens}-word texts)", b, profanity.score, word_texts) for b in (1, 1000)
    ]
    cheap += [
        (
            f"profanity word list ({args.tokens}-word texts, {mixed_share:.0%} with non-ASCII words)",
            b,
            profanity.score,
            mixed_texts,
        )
        for b in (1, 1000)
    ]
    try:
        from moderation.scorers.profanity_check import ProfanityCheckScorer

        check = ProfanityCheckScorer()
        cheap += [
            (f"alt-profanity-check ({args.tokens}-word texts)", b, check.score, word_texts[:2000])
            for b in (1, 1000)
        ]
    except ImportError:
        print("alt-profanity-check not installed: skipped", file=sys.stderr)
    rows += measure(cheap, rounds=args.rounds, seconds=min_seconds)
    if fp32.device != "cpu":
        torch.cuda.synchronize()

    print(f"Machine: {machine()}  ")
    print(
        f"{args.rounds} interleaved rounds of >= {min_seconds:g} s per measurement; texts/s is the median "
        "round, best is the fastest round (least disturbed by other load)\n"
    )
    print("| scorer | texts per call | texts/s (median) | best round | vs baseline (median) |")
    print("|---|---|---|---|---|")
    for name, batch, median, best, speedup in rows:
        print(f"| {name} | {batch} | {median:,.1f} | {best:,.1f} | {speedup} |")
    print(f"model device: {fp32.device}{comparison}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
