"""The real `modgate serve` anchors the audit chain: at start, every interval while events arrive, and
once more at shutdown; each anchor is logged and appended to the anchor file, never only in the database."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from click.testing import CliRunner

from gateway.audit.anchor import authenticate, parse
from gateway.cli import cli
from tests.support.serve_process import free_ports, serve_command, spawn_serve, wait_serving

KEY = "an anchor key of thirty-two chars or more"


def _anchors(path: Path) -> list[int]:
    if not path.exists():
        return []
    found = []
    for line in path.read_text().splitlines():
        anchor = parse(line.split()[-1])
        authenticate(anchor, KEY.encode())
        found.append(anchor.head_id)
    return found


def _wait_for(path: Path, head_id: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if head_id in _anchors(path):
            return
        time.sleep(0.1)
    raise AssertionError(f"no anchor for head {head_id} in {path}: {_anchors(path)}")


def _create_key(database_url: str, name: str) -> None:
    created = CliRunner().invoke(
        cli, ["keys", "--database-url", database_url, "create", "--tenant", "t1", "--name", name]
    )
    assert created.exit_code == 0, created.output


def test_serve_anchors_periodically_and_at_shutdown(demo_model_dir: Path, tmp_path: Path) -> None:
    [grpc_port] = free_ports(1)
    address = f"127.0.0.1:{grpc_port}"
    database_url = f"sqlite:///{tmp_path / 'serve.db'}"
    anchor_file = tmp_path / "anchors.log"
    proc = spawn_serve(
        serve_command(demo_model_dir, migrate=True, grpc_address=address, database_url=database_url),
        MODGATE_AUDIT_ANCHOR_KEY=KEY,
        MODGATE_AUDIT_ANCHOR_FILE=str(anchor_file),
        MODGATE_AUDIT_ANCHOR_INTERVAL_S="0.2",
        MODGATE_WEB_ENABLED="false",
        MODGATE_METRICS_ADDRESS="",
    )
    try:
        wait_serving(address, proc)
        _create_key(database_url, "one")
        _wait_for(anchor_file, 1)
        _create_key(database_url, "two")
        _wait_for(anchor_file, 2)
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)
    assert proc.returncode == 0, output
    assert _anchors(anchor_file) == [1, 2]  # one line per new head, none for an unchanged one
    assert "audit anchor 1:" in output and "audit anchor 2:" in output
    assert "audit anchoring is off" not in output
