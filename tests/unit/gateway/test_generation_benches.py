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
    assert "| 64 x 50257 |" in out  # the stock / oneDNN crossover of the output layer


@pytest.mark.slow
def test_profile_request_quick_run(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_bench("profile_request", ["--quick", "--no-strace"]) == 0
    out = capsys.readouterr().out
    assert "| record outcome + audit (db) |" in out and "| moderation (Detoxify.predict) |" in out
    assert "2 database commits" in out  # the request's record, then its outcome
    assert "| mixed: stock up to 2 rows (default) |" in out


@pytest.mark.slow
def test_bench_prefill_quick_run(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_bench("bench_prefill", ["--quick", "--rounds", "1"]) == 0
    out = capsys.readouterr().out
    assert "| 0 (one pass) |" in out and "| 256 |" in out
