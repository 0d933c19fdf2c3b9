"""The `modgate` command line: the real `serve` process, its refusals, and the `generate` client."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from gateway.cli import cli
from tests.integration.gateway_harness import ServerThread
from tests.support.serve_process import free_ports, serve_command, spawn_serve, wait_serving


def test_serve_process_answers_and_stops_cleanly_on_sigterm(demo_model_dir: Path, tmp_path: Path) -> None:
    grpc_port, metrics_port = free_ports(2)
    address = f"127.0.0.1:{grpc_port}"
    database_url = f"sqlite:///{tmp_path / 'serve.db'}"
    proc = spawn_serve(
        serve_command(
            demo_model_dir,
            migrate=True,
            grpc_address=address,
            database_url=database_url,
            metrics_address=f"127.0.0.1:{metrics_port}",
        )
    )
    try:
        wait_serving(address, proc)
        created = CliRunner().invoke(
            cli,
            [
                "keys",
                "--database-url",
                database_url,
                "create",
                "--tenant",
                "t1",
                "--name",
                "cli",
                "--scope",
                "generate",
            ],
        )
        assert created.exit_code == 0, created.output
        secret = created.stdout.split()[0]
        refused = CliRunner().invoke(cli, ["generate", "hi", "--address", address])
        assert refused.exit_code == 1 and "UNAUTHENTICATED" in refused.output
        result = CliRunner().invoke(
            cli,
            [
                "generate",
                "the meaning of life is",
                "--temperature",
                "0.5",
                "--top-p",
                "0.5",
                "--max-new-tokens",
                "10",
                "--seed",
                "3",
                "--address",
                address,
                "--api-key",
                secret,
            ],
        )
        assert result.exit_code == 0, result.output
        assert result.output.strip(), "the released text is printed"
        bad = CliRunner().invoke(
            cli, ["generate", "x", "--top-p", "2", "--address", address, "--api-key", secret]
        )
        assert bad.exit_code == 1
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as page:
            metrics = page.read().decode()
        generate = "/modgate.v1.GenerationService/Generate"
        assert f'modgate_grpc_requests_total{{code="OK",method="{generate}"}} 1.0' in metrics
        assert f'modgate_grpc_requests_total{{code="INVALID_ARGUMENT",method="{generate}"}} 1.0' in metrics
        assert f'modgate_grpc_requests_total{{code="UNAUTHENTICATED",method="{generate}"}} 1.0' in metrics
        assert 'modgate_outputs_total{action="release",policy="default"}' in metrics or (
            'modgate_outputs_total{action="mask",policy="default"}' in metrics
        )
        assert 'modgate_review_queue_items{state="pending"} 0.0' in metrics
        assert 'modgate_qa_samples{state="pending"} 0.0' in metrics  # no [review.qa] here
        assert "modgate_generated_tokens_total 10.0" in metrics
        assert 'modgate_work_seconds_count{worker="generation"} 1.0' in metrics
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)
    assert proc.returncode == 0, output
    assert "RANDOM WEIGHTS" in output and "OFFLINE MODERATION" in output
    assert "shutting down" in output and "server stopped" in output


def test_serve_refuses_an_outdated_schema(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["serve", "--database-url", f"sqlite:///{tmp_path / 'empty.db'}"])
    assert result.exit_code == 1
    assert "modgate db upgrade" in result.output and "--migrate" in result.output
    assert "Traceback" not in result.output


def test_serve_without_weights_names_the_way_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = CliRunner().invoke(
        cli,
        [
            "serve",
            "--migrate",
            "--model",
            "EleutherAI/gpt-neo-125M",
            "--offline-moderation",
            "--database-url",
            f"sqlite:///{tmp_path / 'db.db'}",
        ],
    )
    assert result.exit_code == 1
    for hint in (
        "cannot load model 'EleutherAI/gpt-neo-125M'",
        "--model",
        "modgate demo-model",
        "never falls back",
    ):
        assert hint in result.output
    assert "Traceback" not in result.output


def test_serve_rejects_bad_settings_with_usage_error() -> None:
    result = CliRunner().invoke(cli, ["serve", "--grpc-address", "no-port"])
    assert result.exit_code == 2
    assert "grpc_address must look like HOST:PORT" in result.output


def test_generate_prints_json_and_errors(gateway: ServerThread) -> None:
    runner = CliRunner()
    result = runner.invoke(
        cli,
        ["generate", "hello", "--max-new-tokens", "3", "--seed", "1", "--json", "--address", gateway.address],
    )
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["seed"] == "1" and body["outputs"][0]["moderation"]["action"].startswith("MODERATION_ACTION_")
    bad = runner.invoke(cli, ["generate", "hello", "--top-k", "-1", "--address", gateway.address])
    assert bad.exit_code == 1
    assert "INVALID_ARGUMENT: top_k:" in bad.output and "Traceback" not in bad.output
    usage = runner.invoke(cli, ["generate", "a", "b", "--stream", "--address", gateway.address])
    assert usage.exit_code == 2 and "--stream takes exactly one prompt" in usage.output


def test_help_does_not_import_torch() -> None:
    code = (
        "import sys; from gateway.cli import main; sys.argv=['modgate','--help']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, 'heavy import'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "serve" in result.stdout and "generate" in result.stdout and "demo-model" in result.stdout
