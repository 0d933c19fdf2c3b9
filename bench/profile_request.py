"""Where one request's time goes at one client: the gateway's stages against the naive script's.

    .venv/bin/python bench/profile_request.py              # ~4 minutes on 2 CPU cores
    .venv/bin/python bench/profile_request.py --quick      # tiny models, seconds (smoke test)

One process holds both sides, so that they meet the same machine: the real gateway
(`build_components` + `GatewayServer`, SQLite, auth off, the bench's moderation: word list + BERT-base
detoxify fp32) serving gRPC on loopback, and the naive script (`pipeline("text-generation")` then
`Detoxify.predict`). Requests alternate between the two, one at a time (32-token prompts, 64 new tokens,
greedy, min = max). For each gateway request the stages are timed where they run, by wrapping the
gateway's own objects (nothing in gateway/ knows about this script):

- record request: `Recorder.request_received` (one transaction: request row + audit event), and
  outcome: `Recorder.outcome` (output row, decision, audit event with its hash chain);
- encode: the prompt's tokenisation; generation: `Batcher.generate_many` (queue + prefill + decoding),
  split with the batcher's own counters into the model's forward passes and token choice;
- moderation: `Moderator.moderate` in the moderation worker;
- the rest of the client's latency: gRPC, interceptors, the event loop's hops between threads.

Database commits per request are counted with an SQLAlchemy event, fsyncs with `strace -c` when strace
is installed. Threads as in `modgate serve` (gateway/generation/threads.py); the naive script runs in a
thread of its own with torch's default thread count. Then the decoding step alone, at one row (in that
thread): the model's forward with the stock Linear layers, with all of them oneDNN-prepacked
(`cpu_prepack_stock_rows = 0`) and with the default mixed kernels;
and how much of a step is Python (torch.profiler: wall time not spent inside a top-level ATen op).
Results are medians; the step times are the least of several interleaved rounds (load only adds).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import functools
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from gateway_fixtures import (  # noqa: E402
    gateway_toml,
    moderation_table,
    prompts,
    write_detoxify_base,
    write_gpt_neo_125m,
)
from machine_info import cpu_name  # noqa: E402

from gateway.generation.threads import confine_main_thread  # noqa: E402


class Stages:
    """Seconds per named stage of the request under way (the client sends one at a time)."""

    def __init__(self) -> None:
        self.current: dict[str, float] = {}
        self.lock = threading.Lock()

    def add(self, name: str, seconds: float) -> None:
        with self.lock:
            self.current[name] = self.current.get(name, 0.0) + seconds

    def take(self) -> dict[str, float]:
        with self.lock:
            out, self.current = self.current, {}
        return out

    def wrap_async(self, obj: Any, method: str, name: str) -> None:
        original = getattr(obj, method)

        @functools.wraps(original)
        async def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await original(*args, **kwargs)
            finally:
                self.add(name, time.perf_counter() - started)

        setattr(obj, method, timed)

    def wrap(self, obj: Any, method: str, name: str) -> None:
        original = getattr(obj, method)

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.add(name, time.perf_counter() - started)

        setattr(obj, method, timed)


class InProcessGateway:
    """The real gateway on an event loop in a thread of this process, its stages instrumented."""

    def __init__(
        self, workdir: Path, model: Path, moderation: dict, args: argparse.Namespace, torch_threads: int
    ) -> None:
        from sqlalchemy import event

        from gateway.config import load_settings
        from gateway.server import GatewayServer, build_components

        config = workdir / "profile.toml"
        settings_table = {
            "model": str(model),
            "device": "cpu",
            "dtype": "float32",
            "grpc_address": "127.0.0.1:0",
            "database_url": f"sqlite:///{workdir / 'profile.db'}",
            "web_enabled": False,
            "metrics_address": "",
            "max_batch_size": 16,
            "max_batch_wait_ms": 5.0,
            "cpu_prepack": True,
            "log_level": "WARNING",
        }
        config.write_text(gateway_toml(settings_table, moderation))
        settings = dataclasses.replace(load_settings(config, env={}), insecure_no_auth=True)
        components = build_components(settings, migrate_schema=True)
        components.torch_threads = torch_threads  # as `serve` arranges them (gateway/generation/threads.py)
        self.components = components
        self.stages = Stages()
        self.commits = 0

        def count(_conn: Any) -> None:
            self.commits += 1

        event.listen(components.engine, "commit", count)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

        async def start() -> tuple[GatewayServer, int]:  # grpc.aio binds the server to the running loop
            server = GatewayServer(components)
            s.wrap_async(server.batcher, "generate_many", "generation (batcher)")
            return server, await server.start()

        s = self.stages
        s.wrap_async(components.recorder, "request_received", "record request (db)")
        s.wrap_async(components.recorder, "outcome", "record outcome + audit (db)")
        s.wrap(components.generator, "encode", "encode prompt")
        s.wrap(components.moderator, "moderate", "moderation (word list + detoxify)")
        self.server, self.port = asyncio.run_coroutine_threadsafe(start(), self.loop).result()
        self.address = f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        """Stops the server, then closes what this object opened: the event loop (its self-pipe
        sockets) and the database engine's connections, so that nothing is left to the garbage
        collector (the test suite runs this script in-process)."""
        asyncio.run_coroutine_threadsafe(self.server.stop(1), self.loop).result()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()
        self.components.engine.dispose()


def gateway_request(gateway: InProcessGateway, stub: Any, prompt: str, new_tokens: int) -> dict[str, float]:
    from gateway.api.v1 import generation_pb2 as gen_pb
    from gateway.client import sampling_parameters

    params = sampling_parameters(do_sample=False, max_new_tokens=new_tokens, min_new_tokens=new_tokens)
    before = gateway.server.batcher.stats()
    commits = gateway.commits
    gateway.stages.take()
    started = time.perf_counter()
    stub.Generate(gen_pb.GenerateRequest(input_string=[prompt], parameters=params), timeout=600)
    total = time.perf_counter() - started
    stages = gateway.stages.take()
    after = gateway.server.batcher.stats()
    generation = stages.pop("generation (batcher)")
    forward = after.forward_s - before.forward_s
    choose = after.choose_s - before.choose_s
    stages["generation: decoding forward passes"] = forward
    stages["generation: token choice + row bookkeeping"] = choose
    stages["generation: queue + prefill + rest"] = generation - forward - choose
    stages["gRPC, interceptors, event loop hops (rest)"] = total - sum(stages.values())
    stages["total (client's latency)"] = total
    stages["db commits"] = gateway.commits - commits
    stages["decoding steps"] = after.steps - before.steps
    return stages


class Naive:
    """The ten-line script the gateway replaces: a text-generation pipeline, then Detoxify.predict."""

    def __init__(self, model: Path, checkpoint: Path, config_dir: Path) -> None:
        import torch
        from detoxify import Detoxify
        from transformers import pipeline

        self.pipe: Any = pipeline(
            "text-generation", model=str(model), tokenizer=str(model), device="cpu", dtype=torch.float32
        )
        self.detox = Detoxify(
            checkpoint=str(checkpoint), huggingface_config_path=str(config_dir), device="cpu"
        )

    def request(self, prompt: str, new_tokens: int) -> dict[str, float]:
        started = time.perf_counter()
        (out,) = self.pipe(
            prompt,
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            do_sample=False,
            return_full_text=False,
            pad_token_id=self.pipe.tokenizer.eos_token_id,
        )
        generated = time.perf_counter()
        self.detox.predict([out["generated_text"]])
        done = time.perf_counter()
        return {
            "generation (pipeline: HF generate, stock kernels)": generated - started,
            "moderation (Detoxify.predict)": done - generated,
            "total": done - started,
        }


def fsyncs_per_request(
    gateway: InProcessGateway, stub: Any, texts: list[str], new_tokens: int
) -> float | None:
    """fsync + fdatasync calls of this process per gateway request, counted by `strace -c` (None when
    strace is missing or may not attach)."""
    if shutil.which("strace") is None:
        return None
    out = Path(tempfile.mkstemp(suffix=".strace")[1])
    tracer = subprocess.Popen(
        ["strace", "-f", "-c", "-e", "trace=fsync,fdatasync", "-o", str(out), "-p", str(os.getpid())],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)  # attached to every thread
    if tracer.poll() is not None:
        return None
    for prompt in texts:
        gateway_request(gateway, stub, prompt, new_tokens)
    tracer.terminate()
    tracer.wait(30)
    calls = 0
    for line in out.read_text().splitlines():
        parts = line.split()
        if parts and parts[-1] in ("fsync", "fdatasync"):
            calls += int(parts[3]) if len(parts) >= 5 else 0
    out.unlink()
    return calls / len(texts)


def decoding_steps(model_dir: Path, prompt_ids: list[int], rounds: int, steps: int) -> dict[str, Any]:
    """ms of one 1-row decoding step (least of `rounds` interleaved rounds) for the three kernel choices,
    and the share of a step spent outside ATen ops (Python)."""
    import torch

    from gateway.generation.kv_batch import BatchState
    from gateway.generation.model import load_model

    kinds = {
        "stock Linear (MKL)": dict(prepack=False),
        "all oneDNN-prepacked (stock_rows 0)": dict(prepack=True, stock_rows=0),
        "mixed: stock up to 2 rows (default)": dict(prepack=True, stock_rows=2),
    }
    models = {
        k: load_model(str(model_dir), revision=None, device="cpu", dtype="float32", **kw)  # type: ignore[arg-type]
        for k, kw in kinds.items()
    }
    pad = models["stock Linear (MKL)"].tokenizer.pad_token_id
    best: dict[str, float] = {}
    with torch.inference_mode():
        for _ in range(rounds):
            for kind, loaded in models.items():
                state, logits = BatchState.prefill(loaded.model, [prompt_ids], [1], pad_token_id=pad)
                state.rows = [0]
                state.next_tokens = logits.argmax(-1)
                for _ in range(steps):
                    started = time.perf_counter()
                    state.next_tokens = state.step(loaded.model).argmax(-1)
                    best[kind] = min(best.get(kind, float("inf")), (time.perf_counter() - started) * 1e3)
        loaded = models["mixed: stock up to 2 rows (default)"]
        state, logits = BatchState.prefill(loaded.model, [prompt_ids], [1], pad_token_id=pad)
        state.rows, state.next_tokens = [0], logits.argmax(-1)
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            started = time.perf_counter()
            for _ in range(steps):
                state.next_tokens = state.step(loaded.model).argmax(-1)
            wall = time.perf_counter() - started
    top = [e for e in prof.events() if e.cpu_parent is None and e.name.startswith("aten::")]
    in_ops = sum(e.cpu_time_total for e in top) / 1e6
    linear = (
        sum(e.cpu_time_total for e in top if e.name in ("aten::linear", "aten::addmm", "aten::mm")) / 1e6
        + sum(e.cpu_time_total for e in prof.events() if "mkldnn::_linear_pointwise" in e.name) / 1e6
    )
    return {
        "step_ms": best,
        "python_share": max(0.0, 1 - in_ops / wall),
        "linear_share": linear / wall,
        "ops_per_step": len(top) / steps,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny models, one request a side")
    parser.add_argument("--requests", type=int, default=4, help="gateway requests (alternated with naive)")
    parser.add_argument("--workdir", type=Path, help="keep the built models here (default: a temp dir)")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--no-strace", action="store_true", help="do not count fsyncs with strace")
    args = parser.parse_args(argv)
    if args.quick:
        args.requests, args.new_tokens = 1, 8
    import grpc
    import torch

    from gateway.api.v1 import generation_pb2_grpc as gen_grpc

    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        model = workdir / "gpt-neo-125m"
        if not (model / "config.json").exists() or args.quick:
            model = write_gpt_neo_125m(
                workdir / ("gpt-neo-tiny" if args.quick else "gpt-neo-125m"), tiny=args.quick
            )
        detox_dir = workdir / ("detoxify-tiny" if args.quick else "detoxify")
        checkpoint, config_dir = write_detoxify_base(detox_dir, tiny=args.quick)
        texts = prompts(2 * args.requests + 4, 32, seed=11)
        # Threads as in `modgate serve`: the main thread confined to one torch thread before anything
        # loads; the naive script runs in a thread of its own with torch's default count (two OpenMP
        # teams in one process slow both a little: the shares hold, the ratio is `make bench`'s).
        threads = confine_main_thread()
        naive_thread = ThreadPoolExecutor(1, initializer=torch.set_num_threads, initargs=(threads,))
        try:
            naive = naive_thread.submit(Naive, model, checkpoint, config_dir).result()
            gateway = InProcessGateway(
                workdir, model, moderation_table(checkpoint, config_dir, "cpu", "fp32"), args, threads
            )
            try:
                with grpc.insecure_channel(gateway.address) as channel:
                    stub = gen_grpc.GenerationServiceStub(channel)
                    gateway_request(gateway, stub, texts[-1], args.new_tokens)  # warm-up
                    naive_thread.submit(naive.request, texts[-1], args.new_tokens).result()
                    gateway_runs, naive_runs = [], []
                    for i in range(args.requests):
                        gateway_runs.append(gateway_request(gateway, stub, texts[i], args.new_tokens))
                        naive_runs.append(
                            naive_thread.submit(naive.request, texts[i], args.new_tokens).result()
                        )
                    fsyncs = (
                        None
                        if args.no_strace
                        else fsyncs_per_request(
                            gateway, stub, texts[args.requests : args.requests + 1], args.new_tokens
                        )
                    )
                prompt_ids = gateway.components.generator.encode(texts[0])
            finally:
                gateway.stop()
            steps = naive_thread.submit(
                decoding_steps,
                model,
                prompt_ids,
                rounds=2 if args.quick else 4,
                steps=4 if args.quick else 12,
            ).result()
        finally:
            naive_thread.shutdown()
            torch.set_num_threads(threads)

    def med(runs: list[dict[str, float]], key: str) -> float:
        return statistics.median(r[key] for r in runs)

    print(
        f"Machine: {cpu_name()}, {os.cpu_count()} logical CPUs, torch {torch.__version__} "
        f"({threads} threads); load average {os.getloadavg()[0]:.1f}; "
        f"{args.requests} requests a side, alternated, {args.new_tokens} new tokens, medians\n"
    )
    total = med(gateway_runs, "total (client's latency)")
    print("| gateway stage | s | share |\n|---|---|---|")
    for key in gateway_runs[0]:
        if key in ("db commits", "decoding steps"):
            continue
        value = med(gateway_runs, key)
        print(f"| {key} | {value:.4f} | {value / total:.1%} |")
    naive_total = med(naive_runs, "total")
    print("\n| naive script stage | s | share |\n|---|---|---|")
    for key in naive_runs[0]:
        value = med(naive_runs, key)
        print(f"| {key} | {value:.4f} | {value / naive_total:.1%} |")
    print(
        f"\ngateway / naive latency: {total / naive_total:.3f}; per request: "
        f"{med(gateway_runs, 'db commits'):.0f} database commits, "
        f"{'not counted (no strace)' if fsyncs is None else f'{fsyncs:.0f} fsync/fdatasync calls'}, "
        f"{med(gateway_runs, 'decoding steps'):.0f} decoding steps"
    )
    print("\n| one decoding step, 1 row, KV cache ~32-44 tokens | ms (least of rounds) |\n|---|---|")
    for kind, value in steps["step_ms"].items():
        print(f"| {kind} | {value:.1f} |")
    print(
        f"\nDecoding step (default kernels) under torch.profiler: {steps['python_share']:.1%} of the wall "
        f"time outside ATen ops (Python, module calls, the profiler's own cost), Linear layers "
        f"{steps['linear_share']:.1%}, {steps['ops_per_step']:.0f} top-level ops per step."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
