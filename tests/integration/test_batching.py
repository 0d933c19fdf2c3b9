"""Dynamic batching through the real gRPC server: concurrent calls share batches, a full queue refuses."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from gateway.api.v1 import generation_pb2 as gen_pb
from gateway.api.v1 import generation_pb2_grpc as gen_grpc
from gateway.client import sampling_parameters
from gateway.generation.batcher import Batcher
from moderation.types import Action
from tests.integration.conftest import PROMPT
from tests.integration.gateway_harness import ServerThread
from tests.support.bench_scripts import run_bench

PROMPTS = ["The meaning of life is", "Once upon a time", "The library opens at nine and", "Rain"]


def request(prompt: str, **params: object) -> gen_pb.GenerateRequest:
    return gen_pb.GenerateRequest(input_string=[prompt], parameters=sampling_parameters(**params))


def batcher_of(server: ServerThread) -> Batcher:
    assert server.server is not None
    return server.server.batcher


def wait_for(condition: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.002)


def test_concurrent_calls_are_generated_in_one_batch(make_gateway: Callable[..., ServerThread]) -> None:
    server = make_gateway(Action.MASK, max_batch_size=8, max_batch_wait_ms=150)
    with grpc.insecure_channel(server.address) as channel:
        stub = gen_grpc.GenerationServiceStub(channel)
        alone = [
            stub.Generate(request(p, seed=i, max_new_tokens=16, min_new_tokens=16), timeout=60)
            for i, p in enumerate(PROMPTS)
        ]
        assert batcher_of(server).stats().max_rows == 1
        assert server.server is not None
        rounds = server.server.moderation_batcher.rounds
        barrier = threading.Barrier(len(PROMPTS))
        together: list[gen_pb.GenerateResponse | None] = [None] * len(PROMPTS)

        def call(i: int) -> None:
            barrier.wait()
            together[i] = stub.Generate(
                request(PROMPTS[i], seed=i, max_new_tokens=16, min_new_tokens=16), timeout=60
            )

        threads = [threading.Thread(target=call, args=(i,)) for i in range(len(PROMPTS))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    stats = batcher_of(server).stats()
    assert stats.max_rows == len(PROMPTS), stats  # all four decoded together
    # ... finished at the same step, and were moderated together (fewer moderate() calls than calls)
    assert server.server is not None
    assert server.server.moderation_batcher.rounds - rounds < len(PROMPTS)
    for a, b in zip(alone, together, strict=True):
        assert b is not None
        assert [o.text for o in a.outputs] == [o.text for o in b.outputs]  # same seed, same text


def test_a_full_queue_gets_resource_exhausted_at_once(make_gateway: Callable[..., ServerThread]) -> None:
    server = make_gateway(Action.MASK, max_queue=1, max_batch_size=1, max_new_tokens_limit=2000)
    batcher = batcher_of(server)
    with grpc.insecure_channel(server.address) as channel:
        stub = gen_grpc.GenerationServiceStub(channel)
        running = stub.Generate.future(request(PROMPT, max_new_tokens=2000, min_new_tokens=2000), timeout=60)
        wait_for(lambda: batcher.running_rows == 1)
        queued = stub.Generate.future(request(PROMPT, seed=1, max_new_tokens=4), timeout=60)
        wait_for(lambda: batcher.waiting == 1)
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as info:
            stub.Generate(request(PROMPT, max_new_tokens=4), timeout=30)
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "queue is full" in (info.value.details() or "")
        assert time.monotonic() - started < 1.0  # refused at once, not after waiting for room
        assert batcher.running_rows == 1 and not running.done()  # the refusal came while it ran
        running.cancel()
        assert queued.result(timeout=30).outputs[0].generated_tokens == 4  # it ran once room was made
    assert batcher.stats().refused == 1


@pytest.mark.slow
def test_gateway_benchmark_quick_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """bench/bench_gateway.py end to end on tiny models: a real `modgate serve`, the baseline process."""
    out = tmp_path / "result.json"
    assert run_bench("bench_gateway", ["--quick", "--variants", "fp32,int8", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert set(result["variants"]) == {"fp32", "int8"}
    for variant in result["variants"].values():
        assert [p["clients"] for p in variant["phases"]] == [1, 4, 16, 32]
        assert all(p["requests"] == p["clients"] and p["ratio"] > 0 for p in variant["phases"])
    report = capsys.readouterr().out
    assert "| gateway (gRPC) | int8 | 16 | 16 |" in report and "Targets:" in report
    assert "- N=32 throughput >= 10x baseline (fp32)" in report
    assert "- N=1 throughput >= 1x baseline (int8)" in report


@pytest.mark.slow
def test_cost_curve_quick_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """bench/bench_curve.py end to end on tiny models: the table, the JSON and the hand-drawn SVG."""
    assert run_bench("bench_curve", ["--quick", "--out-dir", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "curve.json").read_text())
    assert [(p["prompt_tokens"], p["clients"]) for p in result["points"]] == [
        (32, 1),
        (32, 4),
        (32, 16),
        (256, 1),
        (256, 4),
    ]
    assert all(p["requests"] == p["clients"] and p["tokens_per_s"] > 0 for p in result["points"])
    assert result["limits"]["sgemm_gflops"] > 0 and result["limits"]["copy_gbps"] > 0
    svg = (tmp_path / "curve.svg").read_text()
    assert svg.startswith("<svg") and svg.count("<polyline") == 4  # 2 panels x 2 prompt lengths
    report = capsys.readouterr().out
    assert "| 256 | 4 | 4 |" in report and "fp32 sgemm" in report


@pytest.mark.slow
def test_batching_benchmark_quick_run(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_bench("bench_batching", ["--quick", "--rounds", "1", "--requests", "8"]) == 0
    assert "| grouped by knobs (one processor set per batch) |" in capsys.readouterr().out
