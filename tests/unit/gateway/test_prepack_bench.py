"""The kernel benchmark script runs end to end (tiny model, short measurements). Slow: `make test-all`."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[3] / "bench" / "bench_prepack.py"


@pytest.mark.slow
def test_bench_prepack_quick_run(capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("bench_prepack", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--quick", "--rounds", "1", "--seconds", "0.01"]) == 0
    out = capsys.readouterr().out
    assert "| GPT-Neo-125M decoding step, 16 rows |" in out
    assert "greedy texts identical with both kernels: True" in out
