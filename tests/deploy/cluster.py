"""N real `modgate serve` replicas on one PostgreSQL database, behind nginx, for tests/deploy/.

Each replica is a subprocess with its own loopback ports, configured like a deployment: one TOML file
(shared rate limits in the database, one session secret), API keys made with `modgate keys create`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.serve_process import MODGATE, free_ports, serve_command, wait_serving

# Words the demo model often writes: the word list (the only scorer: no detoxify weights needed) flags
# them, so that many outputs are held.
FLAGGED = ["sea", "work", "watched", "golden", "reads", "time", "with", "less", "when", "planted"]
SESSION_SECRET = "a-shared-secret-of-at-least-32-characters!"


def write_config(path: Path, database_url: str) -> Path:
    words = ", ".join(f'"{w}"' for w in FLAGGED)
    path.write_text(
        f'database_url = "{database_url}"\nrate_limit_store = "database"\n'
        f'session_secret = "{SESSION_SECRET}"\n'
        '[moderation]\ndefault_policy = "lb"\n'
        f'[[moderation.scorers]]\ntype = "profanity"\nbuiltin_words = false\nextra_words = [{words}]\n'
        '[moderation.policies.lb]\nextends = "default"\nprofanity_action = "hold"\n'
    )
    return path


def create_key(config: Path, *, name: str, requests_per_minute: int | None = None) -> str:
    args = [MODGATE, "keys", "create", "--tenant", "acme", "--name", name, "--scope", "generate"]
    args += ["--config", str(config)]
    if requests_per_minute is not None:
        args += ["--requests-per-minute", str(requests_per_minute)]
    result = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


@dataclass
class Replica:
    index: int
    model_dir: Path
    config: Path
    directory: Path
    grpc_port: int
    web_port: int
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def log(self) -> Path:
        return self.directory / f"replica-{self.index}.log"

    def start(self) -> None:
        self.starts += 1
        out = self.log.open("ab")
        self.process = subprocess.Popen(
            serve_command(
                self.model_dir,
                config=self.config,
                offline_moderation=False,
                grpc_address=self.address,
                web_address=f"127.0.0.1:{self.web_port}",
                metrics_address="",
                migrate=True,  # every replica, as a deployment might: the advisory lock makes it safe
            ),
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "HF_HUB_OFFLINE": "1", **self.env},
        )
        out.close()

    def wait_serving(self) -> None:
        assert self.process is not None
        wait_serving(self.address, self.process, output=self.log.read_text, timeout=180)

    def kill9(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def terminate(self, timeout: float = 60) -> int:
        """SIGTERM (graceful drain) and wait; returns the exit status."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def make_replicas(
    n: int, *, model_dir: Path, config: Path, directory: Path, env: dict[str, str]
) -> list[Replica]:
    ports = free_ports(2 * n)
    return [
        Replica(i, model_dir, config, directory, ports[2 * i], ports[2 * i + 1], env=dict(env))
        for i in range(n)
    ]


def wait_until(predicate: object, timeout: float, what: str) -> float:
    """Polls `predicate()` until true; returns the seconds it took."""
    assert callable(predicate)
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.5)
    return time.monotonic() - start
