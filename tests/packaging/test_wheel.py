"""The product as a user installs it: a wheel built from the repo, in a fresh venv, used from a folder
outside the checkout: `db upgrade --config`, `demo-model`, `serve`, `generate`, and the shipped protos.

The fresh venv gets the wheel itself (`--no-deps`) and finds its dependencies in the test run's own venv
through a .pth file: the wheel's files and metadata are what is tested, without a second 1.5 GB install
of the locked dependencies (the lock's install is what `make install` runs on every fresh machine).
`pip check` then holds the wheel's requirements against those installed versions.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import venv
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.serve_process import free_ports, serve_command, wait_serving

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built from a copy of the tracked files (a build never writes into the checkout)."""
    source = tmp_path_factory.mktemp("source")
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True
    ).stdout.split(b"\0")
    for name in filter(None, tracked):
        path = REPO / name.decode()
        if path.is_file():
            (source / name.decode()).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, source / name.decode())
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(source)],
        check=True,
        capture_output=True,
    )
    (built,) = out.glob("modgate-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding the wheel; returns its bin folder."""
    root = tmp_path_factory.mktemp("venv")
    venv.create(root, with_pip=False)
    bin_dir = root / "bin"
    site = Path(
        subprocess.run(
            [str(bin_dir / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    # The dependencies (pip included, which installs the wheel): this run's site-packages, appended after
    # the fresh venv's own.
    (site / "zz_locked_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    pip = [str(bin_dir / "python"), "-m", "pip", "--disable-pip-version-check"]
    subprocess.run([*pip, "install", "--quiet", "--no-deps", str(wheel)], check=True, env=_clean_env())
    return bin_dir


def _clean_env(**extra: str) -> dict[str, str]:
    """No PYTHONPATH, no MODGATE_* from the test run: only what a user's shell would have."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MODGATE_", "PYTHON"))}
    env.update(HF_HUB_OFFLINE="1", **extra)
    return env


def _run(bin_dir: Path, cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(bin_dir / args[0]), *args[1:]], cwd=cwd, env=_clean_env(**env), capture_output=True, text=True
    )


def test_the_wheel_imports_from_its_venv_and_ships_its_data(installed: Path, tmp_path: Path) -> None:
    code = (
        "import importlib.resources as r, gateway, moderation, gateway.storage.migrate as m\n"
        "print(gateway.__file__)\n"
        "print(r.files('gateway.api.v1').joinpath('generation.proto').read_text())\n"
        "print(*(r.files(p).joinpath('py.typed').is_file() for p in ('gateway', 'moderation')))\n"
        "print(m.head())\n"
    )
    out = _run(installed, tmp_path, "python", "-c", code)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert str(installed.parent) in lines[0] and str(REPO) not in lines[0], lines[0]
    assert 'syntax = "proto3"' in out.stdout
    assert "True True" in out.stdout
    check = _run(installed, tmp_path, "python", "-m", "pip", "check")
    assert check.returncode == 0, check.stdout + check.stderr


@pytest.fixture
def served(installed: Path, tmp_path: Path) -> Iterator[tuple[Path, Path, str]]:
    """`modgate db upgrade --config`, `demo-model`, `serve --config`, in a folder outside the checkout."""
    grpc_port, web_port, metrics_port = free_ports(3)
    address = f"127.0.0.1:{grpc_port}"
    database = tmp_path / "data" / "gateway.db"
    config = tmp_path / "modgate.toml"
    config.write_text(
        "[server]\n"
        f'grpc_address = "{address}"\n'
        f'web_address = "127.0.0.1:{web_port}"\n'
        f'metrics_address = "127.0.0.1:{metrics_port}"\n'
        "offline_moderation = true\n"
        "[storage]\n"
        f'database_url = "sqlite:///{database}"\n'
    )
    upgraded = _run(installed, tmp_path, "modgate", "db", "upgrade", "--config", str(config))
    assert upgraded.returncode == 0, upgraded.stderr
    assert database.is_file() and not (tmp_path / "var").exists()
    demo = _run(installed, tmp_path, "modgate", "demo-model", "model")
    assert demo.returncode == 0, demo.stderr
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(
        serve_command(
            "model",
            config=config,
            offline_moderation=False,
            insecure_no_auth=True,
            modgate=installed / "modgate",
        ),
        cwd=tmp_path,
        env=_clean_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_serving(address, proc, output=lambda: (tmp_path / "serve.log").read_text())
        yield installed, config, address
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError(
                "modgate serve did not stop within 30 s of SIGTERM:\n" + (tmp_path / "serve.log").read_text()
            ) from None
        finally:
            log.close()


def test_installed_gateway_serves_and_generates(served: tuple[Path, Path, str], tmp_path: Path) -> None:
    bin_dir, config, address = served
    # The client finds the gateway through the same configuration file.
    out = _run(
        bin_dir,
        tmp_path,
        "modgate",
        "generate",
        "--config",
        str(config),
        "hello there",
        "--max-new-tokens",
        "5",
    )
    assert out.returncode == 0, out.stderr
    assert "request " in out.stderr and out.stdout.strip(), out.stdout + out.stderr
    explicit = _run(
        bin_dir, tmp_path, "modgate", "generate", "--address", address, "--json", "hi", "--seed", "1"
    )
    assert explicit.returncode == 0 and '"outputs"' in explicit.stdout, explicit.stderr
