"""tests/deprecation_policy.py: our deprecated calls fail the run once, with a list; others only show."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

from tests.deprecation_policy import ours

ROOT = Path(__file__).resolve().parents[3]


def _record(category: type[Warning], filename: Path, lineno: int = 1) -> warnings.WarningMessage:
    return warnings.WarningMessage("old API", category, str(filename), lineno)


def test_only_deprecations_at_our_call_sites_count(tmp_path: Path) -> None:
    ours_dir, theirs = tmp_path / "gateway", tmp_path / "venv" / "lib" / "site-packages" / "lib"
    records = [
        _record(FutureWarning, ours_dir / "kv_batch.py", 67),
        _record(FutureWarning, ours_dir / "kv_batch.py", 67),  # the same call site twice: once
        _record(DeprecationWarning, theirs / "inner.py"),
        _record(UserWarning, ours_dir / "x.py"),  # not a deprecation: pytest's "error" handles it
        _record(PendingDeprecationWarning, tmp_path / "elsewhere.py"),
    ]
    found = ours(records, [ours_dir, tmp_path / "venv"])
    assert [(Path(d.filename).name, d.lineno, d.category) for d in found] == [
        ("kv_batch.py", 67, "FutureWarning")
    ]


def _pytest_in(folder: Path, roots: str) -> subprocess.CompletedProcess[str]:
    """A pytest run in `folder` with the plugin on and `roots` as our code."""
    (folder / "pytest.ini").write_text(
        f"[pytest]\ndeprecation_roots = {roots}\nfilterwarnings =\n    error\n    default::FutureWarning\n"
    )
    plugins = ["-p", "tests.deprecation_policy", "-p", "no:cacheprovider", "-p", "no:asyncio"]
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", *plugins],
        cwd=folder,
        env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{folder}"},
        capture_output=True,
        text=True,
    )


def test_a_run_with_one_of_ours_fails_once_with_a_list(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "__init__.py").write_text("")
    (tmp_path / "mine" / "calls.py").write_text(
        "import warnings\n\ndef old():\n    warnings.warn('use new() instead', FutureWarning, stacklevel=1)\n"
    )
    (tmp_path / "test_it.py").write_text(
        "from mine.calls import old\n\n"
        "def test_one():\n    old()\n\n"
        "def test_two():\n    old()\n\n"
        "def test_plain():\n    assert True\n"
    )
    run = _pytest_in(tmp_path, "mine")
    assert run.returncode == 1, run.stdout
    assert "3 passed" in run.stdout  # every test keeps its own verdict
    report = run.stdout.split("deprecated calls in our code (they fail the run)")[1]
    reported = f"{(tmp_path / 'mine' / 'calls.py').resolve()}:4: FutureWarning: use new() instead"
    assert report.count(reported) == 1, run.stdout

    clean = _pytest_in(tmp_path, "elsewhere")  # the same warning from code that is not ours
    assert clean.returncode == 0, clean.stdout
