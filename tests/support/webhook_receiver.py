"""A real HTTP receiver for webhook tests: a threaded `http.server` on a loopback port.

`respond(body)` decides each answer: an HTTP status, or a float (seconds to stall before answering 200,
longer than the gateway's timeout to make it time out). Every request is kept (headers and raw bytes).
`port` may be given before the receiver starts, to test a receiver that is down and comes up later.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Behaviour = int | float


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def event(self) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(self.body)
        return document

    @property
    def raw(self) -> bytes:
        """Every byte the receiver got (headers and body), to search for text that must not be there."""
        head = "".join(f"{k}: {v}\r\n" for k, v in self.headers.items()).encode()
        return head + self.body


class Receiver:
    def __init__(self, port: int = 0, respond: Callable[[dict[str, Any]], Behaviour] | None = None) -> None:
        self.port = port
        self.respond: Callable[[dict[str, Any]], Behaviour] = respond or (lambda _event: 200)
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._lock:
                    receiver.received.append(Received(dict(self.headers.items()), body))
                behaviour = receiver.respond(json.loads(body))
                status = 200
                if isinstance(behaviour, float):
                    time.sleep(behaviour)
                else:
                    status = behaviour
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:  # the gateway gave up waiting and closed the connection
                    pass

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            allow_reuse_address = True
            request_queue_size = 128  # a worker sends a batch of events at once

        self._server = Server(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def events(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r.event for r in self.received]
