"""Two `modgate serve` replicas on one fresh PostgreSQL database, started together (they race to seed
the stored policies), with a short policy refresh so that a change made through one is seen by the
other within a bounded poll. For the runtime-policy and word-list tests."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

from gateway.storage import migrate
from tests.support.pg import postgres_server
from tests.support.serve_process import free_ports, serve_command, spawn_serve, wait_serving

REFRESH_S = "0.3"


def two_replicas(model_dir: Path, workdir: Path, config_text: str) -> Iterator[dict[str, str]]:
    """For a module fixture (`yield from`): {"a", "b": gRPC addresses, "url": the database, "config": the
    settings file, "model"}; where PostgreSQL is absent the test is skipped with the reason."""
    config = workdir / "modgate.toml"
    config.write_text(config_text, encoding="utf-8")
    for pg in postgres_server():
        url = pg.url_for(pg.create())
        migrate.upgrade(url)
        addresses = [f"127.0.0.1:{port}" for port in free_ports(2)]
        procs: list[subprocess.Popen[str]] = []
        try:
            for address in addresses:  # both start at once: they race to seed, one wins
                argv = serve_command(
                    model_dir,
                    config=config,
                    grpc_address=address,
                    database_url=url,
                    no_web=True,
                    metrics_address="",
                )
                procs.append(spawn_serve(argv, MODGATE_POLICY_REFRESH_S=REFRESH_S))
            for address, proc in zip(addresses, procs, strict=True):
                wait_serving(address, proc)
            yield {
                "a": addresses[0],
                "b": addresses[1],
                "url": url,
                "config": str(config),
                "model": str(model_dir),
            }
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                    proc.communicate(timeout=60)
