"""Fixtures shared by every test directory: the demo model (built once per run)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Deprecated calls in our code fail the run once, with a list (why: tests/deprecation_policy.py).
pytest_plugins = ["tests.deprecation_policy"]

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Servers started by tests (in-process or `modgate serve` subprocesses) must not fight over a fixed port.
os.environ.setdefault("MODGATE_METRICS_ADDRESS", "127.0.0.1:0")
os.environ.setdefault("MODGATE_WEB_ADDRESS", "127.0.0.1:0")


@pytest.fixture(scope="session")
def demo_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from gateway.generation.demo import write_demo_model

    return write_demo_model(tmp_path_factory.mktemp("demo-model"))
