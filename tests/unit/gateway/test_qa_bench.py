"""The QA recording benchmark runs end to end (a few calls). Slow: `make test-all`."""

from __future__ import annotations

import pytest

from tests.support.bench_scripts import run_bench


@pytest.mark.slow
def test_bench_quick_run(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_bench("bench_qa_recording", ["--quick"]) == 0
    out = capsys.readouterr().out
    assert "| without QA (baseline) |" in out and "| QA at rate 1.0 |" in out
    assert "QA at rate 0.02 / baseline:" in out
