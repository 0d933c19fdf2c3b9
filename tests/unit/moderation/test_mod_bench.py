"""The benchmark script runs end to end (tiny model, short measurements). Slow: `make test-all`."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[3] / "bench" / "bench_moderation.py"


@pytest.mark.slow
def test_bench_quick_run(capsys) -> None:
    spec = importlib.util.spec_from_file_location("bench_moderation", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--quick", "--rounds", "1", "--seconds", "0.01"]) == 0
    out = capsys.readouterr().out
    assert "| profanity word list (80-word texts) | 1 |" in out
    assert "DetoxifyScorer int8 dynamic" in out and "max |score difference|" in out
    assert "int8 kernel ceiling on this CPU" in out and "int8 / fp32 DetoxifyScorer, 16 per call" in out
