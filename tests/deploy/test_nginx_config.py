"""deploy/nginx/modgate.conf is valid for Debian's nginx (`nginx -t`), in the shape tests/deploy/ runs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.deploy.nginx import CONF, NGINX, Nginx, answered_counts, render


def test_rendering_replaces_only_listen_and_server_lines() -> None:
    text = CONF.read_text()
    out = render(
        text,
        grpc_port=1,
        web_port=2,
        grpc=["127.0.0.1:11", "127.0.0.1:12", "127.0.0.1:13"],
        web=["127.0.0.1:21"],
    )
    assert out.count("server 127.0.0.1:1") == 3 and "server 127.0.0.1:21 max_fails=1 fail_timeout=5s;" in out
    assert "listen 127.0.0.1:1 http2;" in out and "listen 127.0.0.1:2;" in out
    dropped = {line.strip() for line in text.splitlines()} - {line.strip() for line in out.splitlines()}
    assert all(line.startswith(("server gateway-", "listen ")) for line in dropped), dropped


def test_nginx_accepts_the_configuration(tmp_path: Path) -> None:
    if not os.path.exists(NGINX):
        pytest.skip("nginx is not installed (apt-get install -y nginx)")
    nginx = Nginx(tmp_path, grpc_port=1, web_port=2)
    nginx.write(grpc=["127.0.0.1:3", "127.0.0.1:4"], web=["127.0.0.1:5"])
    result = nginx.test_config()
    assert result.returncode == 0, result.stderr
    assert "syntax is ok" in result.stderr


def test_upstream_counts_are_calls_each_replica_answered() -> None:
    """Access log lines in LOG_FORMAT: an attempt nginx gave up on and retried elsewhere (a refused
    connection, a replica killed mid-call) is no call that replica answered."""
    generate = "/modgate.v1.GenerationService/Generate"
    lines = [
        f"{generate}|200|127.0.0.1:11|200",
        f"{generate}|200|127.0.0.1:11, 127.0.0.1:12|502, 200",  # refused by 11, answered by 12
        f"{generate}|502|127.0.0.1:11|502",  # 11 died mid-call, nothing to retry on
        f"{generate}|499|127.0.0.1:13|-",  # the client went away first
        "/healthz|200|-|-",  # not proxied
        "/v1/completions|200|127.0.0.1:21, 127.0.0.1:22 : 127.0.0.1:23|502, 504 : 200",
    ]
    assert answered_counts(lines) == {"127.0.0.1:11": 1, "127.0.0.1:12": 1, "127.0.0.1:23": 1}
