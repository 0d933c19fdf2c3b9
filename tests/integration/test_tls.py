"""gRPC over TLS: certificate and key from the settings; clients trust the CA, plaintext is refused."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from click.testing import CliRunner

from gateway.cli import cli
from gateway.client import GatewayClient
from gateway.config import Settings, SettingsError
from moderation.types import Action
from tests.integration.gateway_harness import ServerThread


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    where = tmp_path_factory.mktemp("tls")
    cert, key = where / "cert.pem", where / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture(scope="module")
def tls_gateway(make_gateway: Callable[..., ServerThread], certificate: tuple[Path, Path]) -> ServerThread:
    cert, key = certificate
    return make_gateway(Action.MASK, tls_cert_file=str(cert), tls_key_file=str(key))


def test_tls_client_is_served(tls_gateway: ServerThread, certificate: tuple[Path, Path]) -> None:
    credentials = grpc.ssl_channel_credentials(certificate[0].read_bytes())
    with GatewayClient(tls_gateway.address, credentials=credentials) as client:
        assert client.generate("The garden", max_new_tokens=3).outputs


def test_plaintext_client_is_refused(tls_gateway: ServerThread) -> None:
    with GatewayClient(tls_gateway.address, timeout=5) as client, pytest.raises(grpc.RpcError) as info:
        client.generate("The garden", max_new_tokens=3)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE


def test_cli_generate_over_tls(tls_gateway: ServerThread, certificate: tuple[Path, Path]) -> None:
    result = CliRunner().invoke(
        cli,
        [
            "generate",
            "hello",
            "--max-new-tokens",
            "2",
            "--address",
            tls_gateway.address,
            "--tls-ca-file",
            str(certificate[0]),
        ],
    )
    assert result.exit_code == 0, result.output


def test_cert_without_key_is_refused(certificate: tuple[Path, Path], tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="give both or neither"):
        Settings(tls_cert_file=str(certificate[0]))
    with pytest.raises(SettingsError, match="tls_key_file: no such file"):
        Settings(tls_cert_file=str(certificate[0]), tls_key_file=str(tmp_path / "missing.pem"))
