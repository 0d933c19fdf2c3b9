"""Runs a benchmark script of `bench/` in-process (the scripts are files, not an importable package)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"


def run_bench(script: str, argv: list[str]) -> int:
    """`bench/<script>.py`'s `main(argv)`; returns its exit code."""
    spec = importlib.util.spec_from_file_location(script, BENCH / f"{script}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return int(module.main(argv))
