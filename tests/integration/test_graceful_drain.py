"""SIGTERM to a real `modgate serve`: what a prober, a client with a call in flight and a new client see.

The server turns its health NOT_SERVING (an open Health.Watch is told), then drains gRPC and the web port
at once, each with `grace_period_s` for the calls in flight: a gRPC stream and a streamed /v1 completion
both finish, new gRPC calls (Health.Check included) get UNAVAILABLE and new web connections are refused
while the other calls still run, and the process exits 0 as soon as the last call in flight has ended.

The /v1 call is in flight for as long as the test wants, whatever the machine's speed: its client sends
the request body slowly (chunked), finishing it only OLD_WEB_GRACE_S + 2 s after the SIGTERM.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway.client import NO_RETRY, GatewayClient
from tests.support.serve_process import free_ports, serve_command, spawn_serve, wait_serving

GRACE_S = 40  # longer than any call here: the process must exit when its calls end, not at the grace
OLD_WEB_GRACE_S = 5  # the web port's fixed grace before it followed grace_period_s
BODY_DONE_S = OLD_WEB_GRACE_S + 2  # the slow /v1 body is finished this long after the SIGTERM
GRPC_TOKENS = 200  # seconds on the demo model: in flight well past the checks right after the SIGTERM
V1_TOKENS = 16
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@dataclass
class SlowCompletion:
    """A streamed /v1 completion whose request body is sent in two pieces: the second once `release`
    is set and `BODY_DONE_S` more seconds have passed. Run in a thread."""

    url: str
    sent_first: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    chunks: list[str] = field(default_factory=list)
    finish_reason: str | None = None
    done_at: float | None = None
    error: str | None = None

    def _body(self) -> Iterator[bytes]:
        body = json.dumps(
            {
                "model": "demo",
                "prompt": "The garden",
                "max_tokens": V1_TOKENS,
                "min_tokens": V1_TOKENS,
                "seed": 1,
                "stream": True,
            }
        ).encode()
        yield body[:10]
        self.sent_first.set()
        self.release.wait(60)
        time.sleep(BODY_DONE_S)
        yield body[10:]

    def run(self) -> None:
        try:
            with httpx.stream(
                "POST", f"{self.url}/v1/completions", content=self._body(), timeout=60
            ) as reply:
                if reply.status_code != 200:
                    self.error = f"{reply.status_code} {reply.read()!r}"
                    return
                for line in reply.iter_lines():
                    data = line.removeprefix("data: ")
                    if data == "[DONE]":
                        self.done_at = time.monotonic()
                    elif line.startswith("data: "):
                        choice = json.loads(data)["choices"][0]
                        self.chunks.append(choice["text"])
                        self.finish_reason = choice.get("finish_reason") or self.finish_reason
        except Exception as exc:  # the server cut the call: reported by the test's assertions
            self.error = repr(exc)


@dataclass
class GrpcStream:
    """A gRPC GenerateStream read in a thread; `started` once its first message (`start`) came."""

    address: str
    started: threading.Event = field(default_factory=threading.Event)
    final: object | None = None
    ended_at: float | None = None
    error: str | None = None

    def run(self) -> None:
        with GatewayClient(self.address, timeout=60, retry=NO_RETRY) as client:
            try:
                stream = client.generate_stream(
                    "The meaning of life is", max_new_tokens=GRPC_TOKENS, min_new_tokens=GRPC_TOKENS, seed=3
                )
                for message in stream:
                    if message.HasField("start"):
                        self.started.set()
                    elif message.HasField("final"):
                        self.final = message.final
            except grpc.RpcError as exc:
                self.error = exc.code().name if isinstance(exc, grpc.Call) else repr(exc)
            finally:
                self.ended_at = time.monotonic()
                self.started.set()


def _check(address: str) -> str:
    """A new Health.Check on a new connection, as a prober makes it: the status or the error code."""
    with grpc.insecure_channel(address) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
        except grpc.RpcError as exc:
            return exc.code().name if isinstance(exc, grpc.Call) else "UNKNOWN"
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


def _new_generate(address: str) -> str:
    with GatewayClient(address, timeout=2, retry=NO_RETRY) as client:
        try:
            client.generate("The garden", max_new_tokens=1)
        except grpc.RpcError as exc:
            return exc.code().name if isinstance(exc, grpc.Call) else "UNKNOWN"
    return "OK"


def _new_web_connection(url: str) -> str:
    try:
        return str(httpx.get(f"{url}/healthz", timeout=2).status_code)
    except httpx.ConnectError:
        return "refused"


def _within(seconds: float, predicate: object) -> bool:
    assert callable(predicate)
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def test_sigterm_drains_grpc_and_web_calls_in_flight_and_refuses_new_ones(
    demo_model_dir: Path, tmp_path: Path
) -> None:
    grpc_port, web_port = free_ports(2)
    address, web = f"127.0.0.1:{grpc_port}", f"http://127.0.0.1:{web_port}"
    proc = spawn_serve(
        serve_command(
            demo_model_dir,
            migrate=True,
            insecure_no_auth=True,
            grpc_address=address,
            web_address=f"127.0.0.1:{web_port}",
            metrics_address="",
            database_url=f"sqlite:///{tmp_path / 'drain.db'}",
        ),
        MODGATE_GRACE_PERIOD_S=str(GRACE_S),
        MODGATE_SERVED_MODEL_NAME="demo",
    )
    slow, generating = SlowCompletion(web), GrpcStream(address)
    threads = [threading.Thread(target=slow.run), threading.Thread(target=generating.run)]
    try:
        wait_serving(address, proc)
        with grpc.insecure_channel(address) as channel:
            watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(), timeout=60)
            statuses = iter(watch)
            assert next(statuses).status == SERVING
            for t in threads:
                t.start()
            assert slow.sent_first.wait(30), "the /v1 call is in flight"
            assert generating.started.wait(30) and generating.error is None, generating.error

            proc.send_signal(signal.SIGTERM)
            sigterm = time.monotonic()
            slow.release.set()
            # While the gRPC stream still runs, the web port refuses new connections ...
            assert _within(3, lambda: _new_web_connection(web) == "refused"), "new web connections refused"
            assert generating.ended_at is None, "premise: the gRPC stream is still in flight"
            # ... and while the /v1 call still runs, the gRPC port refuses new calls (draining the web
            # port first, then gRPC, accepted new gRPC calls for as long as the web calls lasted).
            assert _within(3, lambda: _new_generate(address) == "UNAVAILABLE"), "new gRPC calls refused"
            assert _check(address) == "UNAVAILABLE", "a new Health.Check is refused like any new call"
            assert next(statuses).status == NOT_SERVING, "an open Health.Watch is told"
            watch.cancel()  # a watch is a call in flight too: left open, it would hold the drain
            assert slow.done_at is None and slow.error is None, "premise: the /v1 call is still in flight"
        for t in threads:
            t.join(60)
        assert generating.error is None, f"the gRPC stream in flight failed: {generating.error}"
        assert generating.final is not None, "the gRPC stream in flight finished"
        assert slow.error is None, f"the /v1 call in flight was cut: {slow.error}"
        assert slow.done_at is not None and slow.finish_reason == "length", "the /v1 stream finished"
        assert slow.done_at - sigterm > OLD_WEB_GRACE_S + 1, "premise: it outlasted the old 5 s web grace"
        output, _ = proc.communicate(timeout=GRACE_S)
        exited_after = time.monotonic() - sigterm
    finally:
        slow.release.set()
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)
        for t in threads:
            t.join(60)
    assert proc.returncode == 0, output
    assert exited_after < GRACE_S - 10, f"exited {exited_after:.1f} s after SIGTERM: it waited out the grace"
    assert "server stopped" in output
