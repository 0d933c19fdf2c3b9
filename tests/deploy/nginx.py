"""Runs deploy/nginx/modgate.conf with Debian's nginx on loopback ports, as the current user.

The shipped file is used as it is except for its `listen` lines and the `server` lines of its two
upstreams, which name the compose services (gateway-1:50051, ...): `render` replaces exactly those and
fails if the file no longer has the shape it expects, so the directives under test are the shipped ones.
"""

from __future__ import annotations

import getpass
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "deploy" / "nginx" / "modgate.conf"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
# The access log says which replica took each call (tests count the spread). Fields are split on "|":
# a call nginx tried on several replicas lists each attempt, as "a, b" and "502, 200".
LOG_FORMAT = "$request_uri|$status|$upstream_addr|$upstream_status"
# nginx separates the attempts of one request with ", " (and groups internal redirects with " : ").
_ATTEMPTS = re.compile(r",\s*|\s+:\s+")


def answered_counts(lines: Iterable[str]) -> dict[str, int]:
    """Calls each upstream address answered, from access log lines in LOG_FORMAT: an attempt counts for
    its address only when that address answered it (upstream status 200, for HTTP and gRPC alike); the
    attempts nginx gave up on (a refused connection, a replica killed mid-call: 502) count for none."""
    counts: dict[str, int] = {}
    for line in lines:
        _uri, _status, addresses, statuses = line.rstrip("\n").split("|")
        pairs = zip(_ATTEMPTS.split(addresses), _ATTEMPTS.split(statuses), strict=True)
        for address, status in pairs:
            if status.strip() == "200" and address.strip() not in ("", "-"):
                counts[address.strip()] = counts.get(address.strip(), 0) + 1
    return counts


def render(text: str, *, grpc_port: int, web_port: int, grpc: list[str], web: list[str]) -> str:
    """The shipped configuration with loopback listen ports and these upstream members."""

    def upstream(match: re.Match[str], members: list[str]) -> str:
        body = match.group(2)
        options = re.search(r"^\s*server \S+( [^;]*)?;", body, re.M)
        assert options, "an upstream without server lines"
        kept = [line for line in body.splitlines(keepends=True) if not line.strip().startswith("server ")]
        first = next(i for i, line in enumerate(kept) if line.strip() and not line.strip().startswith("#"))
        lines = [f"    server {m}{options.group(1) or ''};\n" for m in members]
        return match.group(1) + "".join(kept[:first] + lines + kept[first:]) + "}"

    out, n = re.subn(
        r"(upstream modgate_grpc \{)(.*?)\}", lambda m: upstream(m, grpc), text, count=1, flags=re.S
    )
    assert n == 1, "modgate.conf lost its modgate_grpc upstream"
    out, n = re.subn(
        r"(upstream modgate_web \{)(.*?)\}", lambda m: upstream(m, web), out, count=1, flags=re.S
    )
    assert n == 1, "modgate.conf lost its modgate_web upstream"
    out, n = re.subn(r"^(\s*)listen 50051 http2;", rf"\1listen 127.0.0.1:{grpc_port} http2;", out, flags=re.M)
    assert n == 1, "modgate.conf lost its gRPC listen line"
    out, n = re.subn(r"^(\s*)listen 8080;", rf"\1listen 127.0.0.1:{web_port};", out, flags=re.M)
    assert n == 1, "modgate.conf lost its web listen line"
    return out


def main_conf(directory: Path, include: Path) -> str:
    """A whole nginx.conf whose every path (pid, logs, temp files) is inside `directory`."""
    user = f"user {getpass.getuser()};\n" if os.geteuid() == 0 else ""  # workers stay this user
    temp = "\n".join(
        f"    {kind}_temp_path {directory / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return (
        f"{user}worker_processes 1;\ndaemon off;\npid {directory / 'nginx.pid'};\n"
        f"error_log {directory / 'error.log'} warn;\nevents {{ worker_connections 1024; }}\n"
        f"http {{\n    log_format upstreams '{LOG_FORMAT}';\n"
        f"    access_log {directory / 'access.log'} upstreams;\n{temp}\n    include {include};\n}}\n"
    )


@dataclass
class Nginx:
    directory: Path
    grpc_port: int
    web_port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def conf(self) -> Path:
        return self.directory / "nginx.conf"

    def write(self, *, grpc: list[str], web: list[str]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        site = self.directory / "modgate.conf"
        site.write_text(
            render(CONF.read_text(), grpc_port=self.grpc_port, web_port=self.web_port, grpc=grpc, web=web)
        )
        self.conf.write_text(main_conf(self.directory, site))

    def test_config(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [NGINX, "-t", "-c", str(self.conf), "-p", str(self.directory)],
            capture_output=True,
            text=True,
            timeout=30,
        )

    def start(self) -> None:
        with (self.directory / "nginx.out").open("wb") as log:
            self.process = subprocess.Popen(
                [NGINX, "-c", str(self.conf), "-p", str(self.directory)], stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 10
        while not (self.directory / "nginx.pid").exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"nginx did not start: {(self.directory / 'error.log').read_text()}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)  # graceful: finish the requests in flight
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def upstream_counts(self) -> dict[str, int]:
        """Calls each upstream address answered so far (`answered_counts` of the access log)."""
        log = self.directory / "access.log"
        return answered_counts(log.read_text().splitlines() if log.exists() else [])
