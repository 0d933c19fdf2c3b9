"""Runs a real GatewayServer on a free loopback port in a background event loop.

The tests then talk to it through the generated stubs (or `GatewayClient`) exactly as a remote client
would; only the process is shared, so the model is loaded once per test session.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from gateway.server import Components, GatewayServer

T = TypeVar("T")


class ServerThread:
    def __init__(self, components: Components, *, web: bool = False) -> None:
        self.components = components
        self._web = web
        self.web_url = ""
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="test-gateway", daemon=True)
        self.server: GatewayServer | None = None
        self.address = ""

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self) -> ServerThread:
        self._thread.start()

        async def start() -> int:
            web_address = "127.0.0.1:0" if self._web else None
            self.server = GatewayServer(self.components, address="127.0.0.1:0", web_address=web_address)
            return await self.server.start()

        self.address = f"127.0.0.1:{self.run(start())}"
        if self._web and self.server is not None and self.server.web is not None:
            self.web_url = f"http://127.0.0.1:{self.server.web.port}"
        return self

    def stop(self, grace: float = 5.0) -> None:
        """Idempotent: a test may stop its server itself before the fixture does."""
        if self.server is None:
            return
        server, self.server = self.server, None
        self.run(server.stop(grace), timeout=grace + 60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()
