"""Gateway throughput: N concurrent gRPC clients against a real `modgate serve`, and the naive baseline.

    .venv/bin/python bench/bench_gateway.py                      # CPU, ~6 minutes on 2 cores
    .venv/bin/python bench/bench_gateway.py --device cuda --scale 4 --out results.json
    .venv/bin/python bench/bench_gateway.py --quick              # tiny models, a smoke run

Same work on both sides: GPT-Neo-125M-shaped random model (bench/gateway_fixtures.py), 32-token prompts,
64 new tokens, greedy, min_new_tokens = max_new_tokens = 64; every output moderated by a BERT-base-shaped
detoxify model (the gateway also runs its word list and records everything in SQLite).

- Baseline: one process, one request at a time: `pipeline("text-generation")`, then `Detoxify.predict`.
- Gateway: `modgate serve` in a subprocess (dynamic batching, max_batch_size 32, moderation worker,
  database), N = 1 then `--clients` (default 4, 16, 32) closed-loop clients. With fp32 detoxify
  (`--variants fp32,int8` adds a gateway with int8 detoxify, CPU only).
- Bare: `model.generate` + the gateway's own `Moderator` in-process: the least one request costs; the
  gateway's N=1 latency is compared with it (the gateway's overhead).

The machine's speed drifts with other load, so measurements are interleaved: baseline blocks run before
and after each gateway phase (each ratio uses the adjacent blocks), and N=1 alternates gateway and bare
requests. Results: a markdown table on stdout, JSON to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
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

from gateway_fixtures import (  # noqa: E402
    gateway_toml,
    moderation_table,
    prompts,
    write_detoxify_base,
    write_gpt_neo_125m,
)
from gateway_report import markdown, percentile  # noqa: E402


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class DirectProcess:
    """The baseline / bare process (bench/direct_runner.py), driven one JSON line at a time."""

    def __init__(self, args: argparse.Namespace, model: Path, checkpoint: Path, config_dir: Path) -> None:
        cmd = [
            sys.executable,
            str(ROOT / "bench" / "direct_runner.py"),
            f"--model={model}",
            f"--checkpoint={checkpoint}",
            f"--config-dir={config_dir}",
            f"--device={args.device}",
            f"--variants={','.join(args.variants)}",
            f"--new-tokens={args.new_tokens}",
            f"--prepack={'on' if args.cpu_prepack == 'on' else 'off'}",
            f"--warmup-prompt={prompts(1, args.prompt_tokens, seed=99)[0]}",
        ]
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.ready = self._read()

    def _read(self) -> dict[str, Any]:
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError(f"direct runner exited ({self._proc.wait()})")
        return json.loads(line)

    def ask(self, **command: Any) -> dict[str, Any]:
        assert self._proc.stdin is not None
        self._proc.stdin.write(json.dumps(command) + "\n")
        self._proc.stdin.flush()
        return self._read()

    def close(self) -> dict[str, Any]:
        reply = self.ask(cmd="quit")
        self._proc.wait(60)
        for pipe in (self._proc.stdin, self._proc.stdout):
            if pipe is not None:
                pipe.close()
        return reply


class Gateway:
    """`modgate serve` in a subprocess with the bench settings; `peak_rss` from /proc before stopping."""

    def __init__(self, args: argparse.Namespace, workdir: Path, model: Path, moderation: dict) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.address = f"127.0.0.1:{port}"
        settings = {
            "model": str(model),
            "device": args.device,
            "dtype": "float32",
            "grpc_address": self.address,
            "database_url": f"sqlite:///{workdir / f'bench-{port}.db'}",
            "web_enabled": False,
            "metrics_address": "",
            "max_batch_size": args.max_batch_size,
            "max_batch_wait_ms": args.max_batch_wait_ms,
            "cpu_prepack": args.cpu_prepack == "on",
            "share_cores": args.share_cores == "on",
            "max_queue": 256,
            "log_level": "WARNING",
        }
        config = workdir / f"gateway-{port}.toml"
        config.write_text(gateway_toml(settings, moderation))
        # `python -m gateway.cli` rather than the `modgate` script: it also runs from a checkout that
        # was not pip-installed (a GPU machine with the dependencies only).
        self._proc = subprocess.Popen(
            # Authentication off: only the flag can do that (not the config file), and only on loopback.
            [
                sys.executable,
                "-m",
                "gateway.cli",
                "serve",
                "--config",
                str(config),
                "--migrate",
                "--insecure-no-auth",
            ],
            cwd=ROOT,
        )
        self._wait_serving()

    def _wait_serving(self, timeout: float = 600) -> None:
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        deadline = time.monotonic() + timeout
        with grpc.insecure_channel(self.address) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline:
                if self._proc.poll() is not None:
                    raise RuntimeError(f"modgate serve exited with {self._proc.returncode}")
                try:
                    status = stub.Check(health_pb2.HealthCheckRequest(), timeout=2).status
                    if status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.RpcError:
                    pass
                time.sleep(0.5)
        raise RuntimeError("the gateway did not become ready")

    def peak_rss(self) -> int:
        for line in Path(f"/proc/{self._proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        return 0

    def stop(self) -> None:
        self._proc.terminate()
        self._proc.wait(120)


def run_clients(
    address: str, clients: int, per_client: int, texts: list[str], new_tokens: int
) -> dict[str, Any]:
    """`clients` threads, each with its own channel, sending `per_client` requests back to back."""
    import grpc

    from gateway.api.v1 import generation_pb2 as gen_pb
    from gateway.api.v1 import generation_pb2_grpc as gen_grpc
    from gateway.client import sampling_parameters

    params = sampling_parameters(do_sample=False, max_new_tokens=new_tokens, min_new_tokens=new_tokens)
    latencies: list[float] = []
    tokens: list[int] = []
    errors: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(clients)

    def client(n: int) -> None:
        with grpc.insecure_channel(address) as channel:
            stub = gen_grpc.GenerationServiceStub(channel)
            barrier.wait()
            for k in range(per_client):
                prompt = texts[(n * per_client + k) % len(texts)]
                started = time.perf_counter()
                try:
                    response = stub.Generate(
                        gen_pb.GenerateRequest(input_string=[prompt], parameters=params), timeout=1800
                    )
                except grpc.RpcError as exc:
                    with lock:
                        errors.append(f"{exc.code().name}: {exc.details()}")  # type: ignore[attr-defined]
                    continue
                with lock:
                    latencies.append(time.perf_counter() - started)
                    # min = max new tokens, so each output has exactly `new_tokens`; the response says
                    # 0 for an output the policy withheld (random detoxify weights score near 0.5).
                    tokens.append(sum(o.generated_tokens or new_tokens for o in response.outputs))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"{len(errors)} requests failed, e.g. {errors[0]}")
    return {
        "clients": clients,
        "requests": len(latencies),
        "wall_s": wall,
        "requests_per_s": len(latencies) / wall,
        "tokens_per_s": sum(tokens) / wall,
        "latency_p50": percentile(latencies, 50),
        "latency_p95": percentile(latencies, 95),
        "latency_p99": percentile(latencies, 99),
        "latencies": latencies,
    }


def baseline_block(direct: DirectProcess, texts: list[str], count: int, start: int) -> list[float]:
    return [
        direct.ask(cmd="baseline", prompt=texts[(start + i) % len(texts)])["latency"] for i in range(count)
    ]


def machine(device: str) -> dict[str, Any]:
    import torch
    from machine_info import cpu_name

    cpu = cpu_name()
    import transformers

    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "gpu": torch.cuda.get_device_name(0)
        if device.startswith("cuda") and torch.cuda.is_available()
        else None,
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    started = time.perf_counter()
    log("building GPT-Neo-125M-shaped model and BERT-base-shaped detoxify (random weights)")
    model = write_gpt_neo_125m(workdir / "gpt-neo-125m", tiny=args.quick)
    checkpoint, config_dir = write_detoxify_base(workdir / "detoxify", tiny=args.quick)
    texts = prompts(64, args.prompt_tokens)
    log("loading the baseline and bare process")
    direct = DirectProcess(args, model, checkpoint, config_dir)
    result: dict[str, Any] = {
        "machine": machine(args.device),
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "baseline_peak_rss": direct.ready["baseline_peak_rss"],
        "variants": {},
    }
    baseline_all: list[float] = []
    cursor = 0
    s = args.scale
    for variant in args.variants:
        log(f"starting the gateway (detoxify {variant})")
        gateway = Gateway(
            args, workdir, model, moderation_table(checkpoint, config_dir, args.device, variant)
        )
        run_clients(gateway.address, 1, 1, texts, args.new_tokens)  # warm-up: first shapes, caches
        run_clients(gateway.address, 4, 1, texts, args.new_tokens)
        blocks = [baseline_block(direct, texts, args.baseline_block * s, cursor)]
        cursor += len(blocks[0])
        log(f"{variant}: N=1, alternating with bare model + moderation")
        gateway_n1: list[float] = []
        bare: list[dict[str, Any]] = []
        for i in range(args.n1_requests * s):
            gateway_n1 += run_clients(gateway.address, 1, 1, texts[i:], args.new_tokens)["latencies"]
            bare.append(direct.ask(cmd="bare", variant=variant, prompt=texts[i]))
        phases = []
        for clients in args.clients:
            per_client = args.per_client * s
            blocks.append(baseline_block(direct, texts, args.baseline_block * s, cursor))
            cursor += len(blocks[-1])
            log(f"{variant}: N={clients}, {clients * per_client} requests")
            phases.append(run_clients(gateway.address, clients, per_client, texts, args.new_tokens))
        blocks.append(baseline_block(direct, texts, args.baseline_block * s, cursor))
        cursor += len(blocks[-1])
        peak = gateway.peak_rss()
        gateway.stop()
        baseline_all += [x for b in blocks for x in b]
        n1 = {
            "clients": 1,
            "requests": len(gateway_n1),
            "requests_per_s": 1 / statistics.mean(gateway_n1),
            "tokens_per_s": args.new_tokens / statistics.mean(gateway_n1),
            "latency_p50": percentile(gateway_n1, 50),
            "latency_p95": percentile(gateway_n1, 95),
            "latency_p99": percentile(gateway_n1, 99),
            "latencies": gateway_n1,
        }
        adjacent_blocks = [blocks[i : i + 2] for i in range(len(phases) + 1)]
        for phase, adjacent in zip([n1, *phases], adjacent_blocks, strict=True):
            near = [x for b in adjacent for x in b]
            phase["baseline_requests_per_s"] = 1 / statistics.mean(near)
            phase["ratio"] = phase["requests_per_s"] / phase["baseline_requests_per_s"]
        bare_latency = [b["latency"] for b in bare]
        result["variants"][variant] = {
            "phases": [n1, *phases],
            "peak_rss": peak,
            "bare": {
                "latency_p50": percentile(bare_latency, 50),
                "generate_s_p50": percentile([b["generate_s"] for b in bare], 50),
                "moderate_s_p50": percentile([b["moderate_s"] for b in bare], 50),
                "latencies": bare_latency,
            },
            "overhead_n1": percentile(gateway_n1, 50) / percentile(bare_latency, 50) - 1,
        }
    result["baseline"] = {
        "requests": len(baseline_all),
        "requests_per_s": 1 / statistics.mean(baseline_all),
        "tokens_per_s": args.new_tokens / statistics.mean(baseline_all),
        "latency_p50": percentile(baseline_all, 50),
        "latency_p95": percentile(baseline_all, 95),
        "latency_p99": percentile(baseline_all, 99),
    }
    log("moderation rates (micro-batching moderation: one call for 16 outputs vs 16 calls)")
    outputs = prompts(16, args.new_tokens, seed=7)
    result["moderation_rates"] = direct.ask(cmd="moderation_rates", texts=outputs, rounds=2)["rates"]
    direct.close()
    result["wall_s"] = time.perf_counter() - started
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--quick", action="store_true", help="tiny models, one request per phase")
    parser.add_argument("--scale", type=int, default=1, help="multiply every request count (GPU runs)")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--workdir", type=Path, help="keep the built models here (default: a temp dir)")
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--max-batch-wait-ms", type=float, default=5.0)
    parser.add_argument(
        "--cpu-prepack",
        choices=["on", "off"],
        default="on",
        help="the gateway's cpu_prepack setting (default on, as in production); the bare model + "
        "moderation path follows it, the pipeline baseline never prepacks",
    )
    parser.add_argument(
        "--share-cores",
        choices=["on", "off"],
        default="on",
        help="the gateway's share_cores setting (default on, as in production): decoding and "
        "moderation move cores between them by load",
    )
    parser.add_argument("--prompt-tokens", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--n1-requests", type=int, default=4)
    parser.add_argument(
        "--clients",
        default="4,16,32",
        help="concurrent clients of the phases after N=1 (comma-separated; the targets need 16 and 32)",
    )
    parser.add_argument("--per-client", type=int, default=2, help="requests per client in those phases")
    parser.add_argument(
        "--variants",
        default=None,
        help="detoxify variants for the gateway, comma-separated: fp32 (default), int8 (CPU only)",
    )
    parser.add_argument("--baseline-block", type=int, default=2, help="baseline requests per block")
    args = parser.parse_args(argv)
    args.variants = (args.variants or "fp32").split(",")
    if any(v not in ("fp32", "int8") for v in args.variants) or (
        "int8" in args.variants and args.device != "cpu"
    ):
        parser.error("--variants: fp32 and/or int8 (int8 is CPU only)")
    try:
        args.clients = [int(c) for c in args.clients.split(",")]
    except ValueError:
        parser.error("--clients: comma-separated client counts, e.g. 4,16,32")
    if args.quick:
        args.n1_requests, args.per_client, args.baseline_block = 1, 1, 1
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        result = run(args, workdir)
    command = "python bench/bench_gateway.py " + " ".join(argv if argv is not None else sys.argv[1:])
    result["command"] = command.strip()
    print(markdown(result))  # first: a failure to write the JSON must not lose a 7-minute run's report
    if args.out:
        args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
