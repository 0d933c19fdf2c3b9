"""The benchmark script runs end to end (tiny model, short measurements). Slow: `make test-all`."""

from __future__ import annotations

import pytest

from tests.support.bench_scripts import run_bench


@pytest.mark.slow
def test_bench_quick_run(capsys) -> None:
    assert run_bench("bench_moderation", ["--quick", "--rounds", "1", "--seconds", "0.01"]) == 0
    out = capsys.readouterr().out
    assert "| profanity word list (80-word texts) | 1 |" in out
    assert "with non-ASCII words) | 1000 |" in out  # the folding path (moderation/folding.py)
    assert "DetoxifyScorer int8 dynamic" in out and "max |score difference|" in out
    assert "int8 kernel ceiling on this CPU" in out and "int8 / fp32 DetoxifyScorer, 16 per call" in out
