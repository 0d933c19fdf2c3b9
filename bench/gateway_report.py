"""Turns bench_gateway.py's results into a self-contained markdown report (tables + targets)."""

from __future__ import annotations

import math
import statistics
from typing import Any

GIB = 1024**3


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (with few samples p99 is the maximum: say how many there were)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def _row(name: str, moderation: str, p: dict[str, Any], base: float | None, ratio: float | None) -> str:
    cells = [
        name,
        moderation,
        str(p.get("clients", 1)),
        str(p["requests"]),
        f"{p['requests_per_s']:.3f}",
        f"{p['tokens_per_s']:.1f}",
        f"{p['latency_p50']:.2f}",
        f"{p['latency_p95']:.2f}",
        f"{p['latency_p99']:.2f}",
        "" if base is None else f"{base:.3f}",
        "" if ratio is None else f"**{ratio:.2f}x**",
    ]
    return "| " + " | ".join(cells) + " |"


def markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    s = result["settings"]
    device = m["gpu"] or f"CPU ({m['nproc']} logical CPUs)"
    out = [
        f"#### Gateway throughput on {device}",
        "",
        f"Machine: `nproc` {m['nproc']}, {m['cpu']}, GPU: {m['gpu'] or 'none'}; torch {m['torch']} "
        f"({m['torch_threads']} threads), transformers {m['transformers']}, Python {m['python']}; "
        f"load average at start {m['load_average']}.  ",
        f"Command: `{result['command']}` ({result['wall_s'] / 60:.1f} min). Prompts {s['prompt_tokens']} "
        f"tokens, {s['new_tokens']} new tokens (greedy, min = max), gateway max_batch_size "
        f"{s['max_batch_size']}, max_batch_wait_ms {s['max_batch_wait_ms']:g}, cpu_prepack "
        f"{s.get('cpu_prepack', 'on')}, share_cores {s.get('share_cores', 'off')}.",
        "",
        "| system | detoxify | clients | requests | req/s | generated tok/s | p50 s | p95 s | p99 s "
        "| baseline req/s (adjacent blocks) | gateway / baseline |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        _row("baseline: pipeline + Detoxify.predict, one at a time", "fp32", result["baseline"], None, None),
    ]
    for variant, v in result["variants"].items():
        for phase in v["phases"]:
            out.append(
                _row("gateway (gRPC)", variant, phase, phase["baseline_requests_per_s"], phase["ratio"])
            )
    out += [
        "",
        f"Peak RSS: baseline process {result['baseline_peak_rss'] / GIB:.2f} GiB; "
        + "; ".join(
            f"gateway with {k} detoxify {v['peak_rss'] / GIB:.2f} GiB" for k, v in result["variants"].items()
        )
        + ".",
        "",
        "N=1 overhead: gateway p50 latency vs the bare model + moderation (same requests, alternated):",
        "",
        "| detoxify | gateway p50 s | bare p50 s (generate + moderate) | overhead |",
        "|---|---|---|---|",
    ]
    for variant, v in result["variants"].items():
        b = v["bare"]
        n1 = v["phases"][0]
        out.append(
            f"| {variant} | {n1['latency_p50']:.2f} | {b['latency_p50']:.2f} ({b['generate_s_p50']:.2f} + "
            f"{b['moderate_s_p50']:.3f}) | {v['overhead_n1'] * 100:+.1f}% |"
        )
    rates = result["moderation_rates"]
    out += ["", "Moderation (the gateway's Moderator: word list + detoxify), 16 outputs of 64 words:", ""]
    out += ["| moderator | texts/s (median of rounds) |", "|---|---|"]
    out += [f"| {name} | {statistics.median(values):.1f} |" for name, values in rates.items()]
    out += ["", "Targets:", ""]
    out += _targets(result)
    return "\n".join(out) + "\n"


def _targets(result: dict[str, Any]) -> list[str]:
    """The issue's targets (round 2): ratios against the baseline's adjacent blocks, from this run."""
    lines = []
    goals = {1: 1.0, 16: 8.0, 32: 10.0}
    for variant, v in result["variants"].items():
        for phase in v["phases"]:
            goal = goals.get(phase["clients"])
            if goal is None:
                continue
            lines.append(
                f"- N={phase['clients']} throughput >= {goal:g}x baseline ({variant}): {phase['ratio']:.2f}x "
                f"(p50 {phase['latency_p50']:.2f} s, p99 {phase['latency_p99']:.2f} s): "
                + ("met" if phase["ratio"] >= goal else "NOT met")
            )
        lines.append(
            f"- N=1 latency against bare model + moderation in the baseline's process ({variant}): "
            f"{v['overhead_n1'] * 100:+.1f}% (information; the round 1 target was within 10%)"
        )
    rates = {k: statistics.median(x) for k, x in result["moderation_rates"].items()}
    if "int8, one call" in rates and "fp32, one call" in rates:
        for mode in ("one per call", "one call"):
            speedup = rates[f"int8, {mode}"] / rates[f"fp32, {mode}"]
            lines.append(f"- int8 / fp32 moderation throughput ({mode}): {speedup:.2f}x")
    return lines
