"""The generation benchmark scripts run end to end (tiny model, short measurements). Slow: `make test-all`."""

from __future__ import annotations

import pytest

from tests.support.bench_scripts import run_bench


@pytest.mark.slow
def test_bench_prepack_quick_run(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_bench("bench_prepack", ["--quick", "--rounds", "1", "--seconds", "0.01"]) == 0
    out = capsys.readouterr().out
    assert "| GPT-Neo-125M decoding step, 16 rows |" in out
    assert "greedy texts identical with both kernels: True" in out


@pytest.mark.slow
def test_bench_prefill_quick_run(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_bench("bench_prefill", ["--quick", "--rounds", "1"]) == 0
    out = capsys.readouterr().out
    assert "| 0 (one pass) |" in out and "| 256 |" in out
