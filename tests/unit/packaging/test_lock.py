"""requirements.lock is what `make install` installs: it must cover pyproject's ranges, pin exactly, carry
hashes, and keep the CPU torch. A pyproject edit without `make lock` fails here, not on a user's machine."""

from __future__ import annotations

import os
import re
import subprocess
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[3]
ENTRY = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)((?:\s*\\\n\s+--hash=sha256:[0-9a-f]{64})+)", re.M)


def _lock() -> dict[str, tuple[Version, int]]:
    """name -> (pinned version, number of hashes)."""
    text = (ROOT / "requirements.lock").read_text()
    return {
        canonicalize_name(m.group(1)): (Version(m.group(2)), m.group(3).count("--hash="))
        for m in ENTRY.finditer(text)
    }


def _declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = [r for extra in project["optional-dependencies"].values() for r in extra]
    lock_in = [
        line.strip()
        for line in (ROOT / "requirements/lock.in").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    return [Requirement(r) for r in [*project["dependencies"], *extras, *lock_in]]


def test_every_declared_requirement_is_locked_within_its_range() -> None:
    locked = _lock()
    problems = []
    for requirement in _declared():
        name = canonicalize_name(requirement.name)
        if name not in locked:
            problems.append(f"{requirement} is not in requirements.lock")
        elif not requirement.specifier.contains(locked[name][0], prereleases=True):
            problems.append(f"{requirement}: the lock has {locked[name][0]}")
    assert not problems, "run `make lock`:\n" + "\n".join(problems)


def test_every_entry_is_exact_and_hashed() -> None:
    text = (ROOT / "requirements.lock").read_text()
    names = [
        line.split("==")[0] for line in text.splitlines() if line and not line[0].isspace() and line[0] != "#"
    ]
    locked = _lock()
    assert len(names) == len(locked), "an entry without == or without hashes"
    assert all(count >= 1 for _, count in locked.values())


def test_torch_is_the_cpu_build_and_transformers_has_the_cache_argument() -> None:
    locked = _lock()
    assert locked["torch"][0].local == "cpu", "the lock must pin the CPU torch (requirements/lock.in)"
    assert locked["transformers"][0] >= Version("5.24"), "kv_batch passes `cache=` (transformers 5.24+)"


@pytest.mark.skipif(
    os.environ.get("MODGATE_TEST_LATEST") == "1", reason="make test-latest runs newer versions on purpose"
)
def test_this_environment_is_the_lock() -> None:
    """What `make install` put here is exactly the lock (a stale venv or a hand install shows here)."""
    differ = []
    for name, (pinned, _) in _lock().items():
        try:
            installed = Version(metadata.version(name))
        except metadata.PackageNotFoundError:
            differ.append(f"{name}: lock {pinned}, not installed")
            continue
        if installed != pinned:
            differ.append(f"{name}: lock {pinned}, installed {installed}")
    assert not differ, "run `make install`:\n" + "\n".join(differ)


def test_the_lock_without_torch_keeps_every_other_entry(tmp_path: Path) -> None:
    """`make install TORCH=preinstalled` (a CUDA torch already in the venv) installs this file."""
    subprocess.run(
        ["make", "--no-print-directory", "-s", f"VENV={tmp_path}", f"{tmp_path}/requirements-no-torch.txt"],
        cwd=ROOT,
        check=True,
    )
    text = (tmp_path / "requirements-no-torch.txt").read_text()
    assert "torch==" not in text and "+cpu" not in text
    kept = {name for name in _lock() if name != "torch"}
    names = {canonicalize_name(m.group(1)) for m in ENTRY.finditer(text)}
    assert names == kept
