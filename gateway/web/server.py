"""Runs the web app with uvicorn inside the gateway's own event loop, beside the gRPC server.

The socket is bound here, before uvicorn starts, so that a busy port is a clear :class:`StartupError`
at start-up (and port 0 gives a free port the tests can read back). uvicorn's own signal handling is
switched off: ``gateway.server.serve`` owns SIGTERM/SIGINT and drains both servers at once, with the
same grace (``grace_period_s``) for the requests in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import socket
from collections.abc import Iterator
from typing import Any

import uvicorn

log = logging.getLogger(__name__)


class WebStartupError(RuntimeError):
    """The web port cannot be opened; the message names the address."""


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the gateway handles signals and calls WebServer.stop()


def _bind(address: str) -> socket.socket:
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, int(port)))
    except OSError as exc:
        sock.close()
        why = exc.strerror or exc
        raise WebStartupError(f"cannot listen on {address} for the web queue: {why}") from None
    sock.setblocking(False)
    return sock


class WebServer:
    """``await start()`` -> port; ``await stop()``. One instance serves one app on one address.

    `grace_s`: how long `stop` lets requests in flight (a streamed /v1 completion) finish once the port
    is closed; the gateway passes its `grace_period_s`, as for gRPC calls."""

    def __init__(
        self,
        app: Any,
        address: str,
        *,
        grace_s: float,
        tls_cert_file: str | None = None,
        tls_key_file: str | None = None,
    ) -> None:
        """With a certificate and key (the gateway's gRPC TLS pair), the pages are served over HTTPS and
        the session cookie is marked Secure."""
        self.app = app
        self.address = address
        self._tls = (tls_cert_file, tls_key_file) if tls_cert_file and tls_key_file else None
        self.port = 0
        self._grace_s = grace_s
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        host = self.address.rpartition(":")[0]
        return f"{'https' if self._tls else 'http'}://{host}:{self.port}/"

    async def start(self) -> int:
        sock = _bind(self.address)
        self.port = int(sock.getsockname()[1])
        config = uvicorn.Config(
            self.app,
            log_config=None,  # keep the gateway's logging setup
            access_log=False,
            lifespan="off",
            server_header=False,
            proxy_headers=True,  # X-Forwarded-Proto from a local TLS proxy marks cookies Secure
            timeout_graceful_shutdown=math.ceil(self._grace_s),
            ssl_certfile=self._tls[0] if self._tls else None,
            ssl_keyfile=self._tls[1] if self._tls else None,
        )
        self._server = _Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name="web-server")
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises what stopped it
                raise WebStartupError(f"the web server on {self.address} stopped during start-up")
            await asyncio.sleep(0.01)
        log.info("reviewer web queue listening on %s", self.url)
        return self.port

    async def stop(self, grace: float | None = None) -> None:
        """Closes the port, lets requests in flight finish within `grace` seconds (default: `grace_s`),
        then cancels what is left."""
        if self._server is None or self._task is None:
            return
        grace = self._grace_s if grace is None else grace
        self._server.config.timeout_graceful_shutdown = math.ceil(grace)
        self._server.should_exit = True
        try:
            await asyncio.wait_for(self._task, timeout=grace + 5)
        except TimeoutError:
            self._server.force_exit = True
            self._task.cancel()
        self._server = None
        log.info("web server stopped")
