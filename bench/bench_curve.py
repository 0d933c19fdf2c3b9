"""The gateway's cost curve: throughput and p50/p99 latency against concurrent clients and prompt length,
with this machine's limits (an sgemm roofline and the memory bandwidth, both measured here).

    .venv/bin/python bench/bench_curve.py --out-dir docs/bench      # CPU grid, ~3 minutes on 2 cores
    .venv/bin/python bench/bench_curve.py --full --device cuda        # every point (GPU)
    .venv/bin/python bench/bench_curve.py --quick                     # tiny models, seconds (smoke test)

One `modgate serve` (bench/bench_gateway.py's `Gateway`: GPT-Neo-125M shape, BERT-base detoxify fp32,
SQLite, auth off, max_batch_size 32), closed-loop gRPC clients, greedy, min = max new tokens. The full
grid is 1, 2, 4, 8, 16, 32, 64 clients x prompts of 32, 256 and 1,024 tokens. On a 2-core CPU that is
tens of minutes (64 prefills of 1,024 tokens alone take minutes), so the default CPU grid is every
client count for 32-token prompts and fewer for the longer ones (see GRIDS), with 32 new tokens
instead of 64; `--full` runs the whole grid. Each point: `--per-client` requests per client (default
1) after one warm-up.

Writes a markdown table on stdout, `curve.json` and `curve.svg` (throughput and p50 latency against
clients, one line per prompt length; drawn by hand, no plotting dependency) to `--out-dir`.

The limits: (1) fp32 peak: the best of a few 2048^3 `torch.mm` (MKL sgemm, all threads), GFLOP/s;
generated tokens/s x 2 x parameters (the matrix work per token, attention not counted) over it is the
share of the compute roof. (2) memory: the best of a few copies of a 256 MiB tensor, GB/s (read + write);
a decoding step reads every weight once, so at one client, tokens/s x the weights' bytes over it is the
share of the bandwidth roof (at more clients a step serves several rows: the report gives the bound).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_gateway import Gateway, log, machine, run_clients  # noqa: E402
from gateway_fixtures import (  # noqa: E402
    moderation_table,
    prompts,
    write_detoxify_base,
    write_gpt_neo_125m,
)

CLIENTS = (1, 2, 4, 8, 16, 32, 64)
PROMPTS = (32, 256, 1024)
# The default CPU grid: client counts per prompt length (every one for short prompts).
GRIDS = {"cpu": {32: CLIENTS, 256: (1, 4, 16), 1024: (1, 4)}, "quick": {32: (1, 4, 16), 256: (1, 4)}}


def sgemm_gflops(device: str, size: int = 2048, repeats: int = 5) -> float:
    """Best-of-`repeats` fp32 matrix product rate: the machine's compute roof as torch reaches it."""
    import torch

    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    best = float("inf")
    for _ in range(repeats + 1):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        started = time.perf_counter()
        torch.mm(a, b)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - started)
    return 2 * size**3 / best / 1e9


def copy_gbps(device: str, mib: int = 256, repeats: int = 5) -> float:
    """Best-of-`repeats` bytes moved per second (read + write) copying a tensor larger than the caches
    are likely to hold."""
    import torch

    src = torch.ones(mib * 2**20 // 4, device=device)
    dst = torch.empty_like(src)
    best = float("inf")
    for _ in range(repeats + 1):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        started = time.perf_counter()
        dst.copy_(src)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - started)
    return 2 * src.numel() * 4 / best / 1e9


def model_size(model_dir: Path) -> tuple[int, int]:
    """(parameters, bytes of the weights read per decoding step: every parameter once, fp32)."""
    from safetensors import safe_open

    params = 0
    for file in model_dir.glob("*.safetensors"):
        with safe_open(str(file), framework="pt") as f:
            for key in f.keys():  # noqa: SIM118 (safe_open has no __iter__)
                params += _numel(f.get_slice(key).get_shape())
    return params, params * 4


def _numel(shape: list[int]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def svg(points: list[dict[str, Any]], path: Path) -> None:
    """Two panels, log2 clients on x: generated tokens/s and p50 latency, one polyline per prompt length."""
    colours = {32: "#1f77b4", 256: "#d62728", 1024: "#2ca02c"}
    width, height, pad = 460, 300, 50
    by_prompt: dict[int, list[dict[str, Any]]] = {}
    for p in points:
        by_prompt.setdefault(p["prompt_tokens"], []).append(p)
    clients = sorted({p["clients"] for p in points})
    xmax = max(1, len(clients) - 1)

    def panel(x0: int, key: str, title: str) -> list[str]:
        top = max(p[key] for p in points) * 1.1 or 1.0
        out = [
            f'<g transform="translate({x0},0)">',
            f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="14">{title}</text>',
            f'<line x1="{pad}" y1="{height - pad}" x2="{width - 10}" y2="{height - pad}" stroke="black"/>',
            f'<line x1="{pad}" y1="30" x2="{pad}" y2="{height - pad}" stroke="black"/>',
        ]
        for i, c in enumerate(clients):
            x = pad + i * (width - pad - 20) / xmax
            out.append(
                f'<text x="{x:.1f}" y="{height - pad + 16}" text-anchor="middle" font-size="11">{c}</text>'
            )
        out.append(
            f'<text x="{width / 2}" y="{height - 12}" text-anchor="middle" font-size="12">clients</text>'
        )
        for k in range(5):
            value = top * k / 4
            y = height - pad - (height - pad - 30) * k / 4
            out.append(
                f'<text x="{pad - 4}" y="{y + 4:.1f}" text-anchor="end" font-size="10">{value:.3g}</text>'
            )
        for prompt, series in sorted(by_prompt.items()):
            series = sorted(series, key=lambda p: p["clients"])
            coords = " ".join(
                f"{pad + clients.index(p['clients']) * (width - pad - 20) / xmax:.1f},"
                f"{height - pad - (height - pad - 30) * p[key] / top:.1f}"
                for p in series
            )
            colour = colours.get(prompt, "#444")
            out.append(f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="2"/>')
            for pair in coords.split():
                cx, cy = pair.split(",")
                out.append(f'<circle cx="{cx}" cy="{cy}" r="3" fill="{colour}"/>')
        out.append("</g>")
        return out

    legend = [
        f'<text x="{pad + 12}" y="{45 + 16 * i}" font-size="12" fill="{colours.get(prompt, "#444")}">'
        f"prompt {prompt} tokens</text>"
        for i, prompt in enumerate(sorted(by_prompt))
    ]
    body = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{2 * width}" height="{height}" '
        f'font-family="sans-serif">',
        '<rect width="100%" height="100%" fill="white"/>',
        *panel(0, "tokens_per_s", "generated tokens/s"),
        *panel(width, "latency_p50", "p50 latency, s"),
        *legend,
        "</svg>",
    ]
    path.write_text("\n".join(body) + "\n")


def markdown(result: dict[str, Any]) -> str:
    m, lim = result["machine"], result["limits"]
    out = [
        f"Machine: `nproc` {m['nproc']}, {m['cpu']}, GPU: {m['gpu'] or 'none'}; torch {m['torch']} "
        f"({m['torch_threads']} threads); load average at start {m['load_average']}.  ",
        f"Command: `{result['command']}` ({result['wall_s'] / 60:.1f} min); {result['new_tokens']} new "
        f"tokens, greedy; max_batch_size {result['max_batch_size']}.  ",
        f"Limits measured here: fp32 sgemm {lim['sgemm_gflops']:.0f} GFLOP/s; copy {lim['copy_gbps']:.1f} "
        f"GB/s (read + write); model {lim['parameters'] / 1e6:.0f}M parameters, "
        f"{lim['weight_bytes'] / 1e6:.0f} MB of fp32 weights read per decoding step.  ",
        "Share of sgemm roof: generated tok/s x 2 x parameters over the sgemm rate. Weight reads / copy "
        "rate: tok/s / clients (decoding steps per second if every client's row is in every step) x the "
        "weights' bytes, over the copy rate (an upper bound on the step rate's share when fewer rows "
        "share a step).",
        "",
        "| prompt tokens | clients | requests | req/s | generated tok/s | p50 s | p99 s "
        "| share of sgemm roof | weight reads / copy rate |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for p in result["points"]:
        flops = p["tokens_per_s"] * 2 * lim["parameters"] / 1e9
        bytes_rate = p["tokens_per_s"] / p["clients"] * lim["weight_bytes"] / 1e9
        out.append(
            f"| {p['prompt_tokens']} | {p['clients']} | {p['requests']} | {p['requests_per_s']:.3f} | "
            f"{p['tokens_per_s']:.1f} | {p['latency_p50']:.2f} | {p['latency_p99']:.2f} | "
            f"{flops / lim['sgemm_gflops']:.1%} | {bytes_rate / lim['copy_gbps']:.0%} |"
        )
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="tiny models, a few points (smoke test)")
    parser.add_argument("--full", action="store_true", help="every client count for every prompt length")
    parser.add_argument("--new-tokens", type=int, default=None, help="default 32 on a CPU, 64 with --full")
    parser.add_argument("--per-client", type=int, default=1)
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--out-dir", type=Path, default=None, help="curve.json and curve.svg go here")
    parser.add_argument("--workdir", type=Path, help="keep the built models here (default: a temp dir)")
    args = parser.parse_args(argv)
    grid = (
        GRIDS["quick"]
        if args.quick
        else {p: CLIENTS for p in PROMPTS}
        if args.full or args.device != "cpu"
        else GRIDS["cpu"]
    )
    new_tokens = args.new_tokens or (4 if args.quick else 64 if args.full else 32)
    # Gateway(...) reads these from the namespace, as bench_gateway's arguments.
    args.max_batch_wait_ms, args.cpu_prepack, args.share_cores = 5.0, "on", "on"
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        model = workdir / ("gpt-neo-tiny" if args.quick else "gpt-neo-125m")
        if not (model / "config.json").exists():
            write_gpt_neo_125m(model, tiny=args.quick)
        checkpoint, config_dir = write_detoxify_base(
            workdir / ("detoxify-tiny" if args.quick else "detoxify"), tiny=args.quick
        )
        log("measuring the machine's limits (sgemm, copy)")
        parameters, weight_bytes = model_size(model)
        limits = {
            "sgemm_gflops": sgemm_gflops(args.device),
            "copy_gbps": copy_gbps(args.device),
            "parameters": parameters,
            "weight_bytes": weight_bytes,
        }
        gateway = Gateway(args, workdir, model, moderation_table(checkpoint, config_dir, args.device, "fp32"))
        points = []
        try:
            for prompt_tokens, client_counts in grid.items():
                texts = prompts(max(client_counts) * args.per_client + 1, prompt_tokens, seed=prompt_tokens)
                run_clients(gateway.address, 1, 1, texts[-1:], new_tokens)  # warm-up for this length
                for clients in client_counts:
                    log(f"prompt {prompt_tokens} tokens, {clients} clients")
                    point = run_clients(gateway.address, clients, args.per_client, texts, new_tokens)
                    point.pop("latencies")
                    points.append({"prompt_tokens": prompt_tokens, **point})
        finally:
            gateway.stop()
    result = {
        "machine": machine(args.device),
        "limits": limits,
        "points": points,
        "new_tokens": new_tokens,
        "max_batch_size": args.max_batch_size,
        "wall_s": time.perf_counter() - started,
        "command": (
            "python bench/bench_curve.py " + " ".join(argv if argv is not None else sys.argv[1:])
        ).strip(),
    }
    print(markdown(result))
    if args.out_dir:
        args.out_dir.mkdir(parents=True, exist_ok=True)
        (args.out_dir / "curve.json").write_text(json.dumps(result, indent=2) + "\n")
        svg(points, args.out_dir / "curve.svg")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
